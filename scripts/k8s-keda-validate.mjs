// Validates KEDA resources (ScaledJob, TriggerAuthentication) against
// KEDA's published CRD schemas, as packaged in npm's @kubernetes-models/keda
// (generated from the CRDs' openAPIV3Schema; ajv does the checking).
// Usage: node scripts/k8s-keda-validate.mjs MODELS_DIR DOCS.json
// DOCS.json: a JSON array of the KEDA documents to check. Exit 1 on any error.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const [modelsDir, docsFile] = process.argv.slice(2);
const models = await import(pathToFileURL(`${modelsDir}/keda.sh/v1alpha1/index.js`).href);
const docs = JSON.parse(readFileSync(docsFile, 'utf8'));
let failed = 0;
for (const doc of docs) {
  const Model = models[doc.kind];
  const name = `${doc.kind}/${doc.metadata?.name}`;
  if (!Model || doc.apiVersion !== 'keda.sh/v1alpha1') {
    console.log(`FAIL ${name}: no KEDA schema for ${doc.apiVersion} ${doc.kind}`);
    failed++;
    continue;
  }
  try {
    new Model(doc).validate();
    console.log(`ok   ${name}`);
  } catch (e) {
    console.log(`FAIL ${name}: ${e.message}`);
    failed++;
  }
}
if (docs.length === 0) {
  console.log('FAIL: no KEDA documents given');
  failed++;
}
process.exit(failed ? 1 : 0);
