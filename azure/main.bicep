// testexec on Azure Container Apps, over one storage account (Tables,
// Blobs, Queues). Deploy into an existing resource group with an existing
// Key Vault that holds the GitHub secrets (see docs/deploy-azure.md):
//
//   az deployment group create -g <rg> -f azure/main.bicep \
//     -p image=<registry>/testexec:<tag> executeImage=<registry>/testexec-execute:<tag> \
//        keyVaultName=<vault> githubAppId=<id>
//
// Scale to zero everywhere: the intake app has no replica while nobody
// calls it, and the four handlers are Container Apps jobs started by KEDA's
// azure-queue scaler, one execution per message (`testexec worker --once`).
// Nothing here holds a storage key: every container authenticates with its
// managed identity, and shared-key access is disabled on the account.

@description('Region of every resource.')
param location string = resourceGroup().location

@description('Prefix of resource names: lowercase letters and digits, 3-11 characters.')
@minLength(3)
@maxLength(11)
param prefix string = 'testexec'

@description('The testexec image built with `--features azure` (serve and worker).')
param image string

@description('The image that runs shard jobs: testexec plus the toolchain your tests need (see functions/execute/Dockerfile).')
param executeImage string

@description('Key Vault (same resource group) holding the secrets `github-webhook-secret`, `github-app-private-key` and `api-token`.')
param keyVaultName string

@description('The GitHub App id (not a secret).')
param githubAppId string

@description('Seconds a worker holds a message before it comes back (the worker renews it while a shard runs).')
param visibilitySeconds int = 300

@description('Deliveries before a message moves to its poison queue.')
param maxDequeues int = 5

@description('Longest a shard job may run, in seconds (Container Apps job replica timeout).')
param shardTimeoutSeconds int = 3600

var storageName = '${prefix}${uniqueString(resourceGroup().id)}'
var container = 'testexec'
var table = 'testexecruns'
var queuePrefix = prefix
var handlers = [
  { name: 'trigger', queue: 'requests', image: image, timeout: 900, cpu: '0.5', memory: '1Gi' }
  { name: 'execute', queue: 'shards', image: executeImage, timeout: shardTimeoutSeconds, cpu: '2.0', memory: '4Gi' }
  { name: 'collect', queue: 'results', image: image, timeout: 600, cpu: '0.5', memory: '1Gi' }
  { name: 'report', queue: 'reports', image: image, timeout: 900, cpu: '0.5', memory: '1Gi' }
]
var queueNames = [for h in handlers: '${queuePrefix}-${h.queue}']
var poisonNames = [for h in handlers: '${queuePrefix}-${h.queue}-poison']

// Built-in role definition ids.
var roles = {
  queueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  tableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  blobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${prefix}-logs'
  location: location
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Container Apps on the consumption plan (and KEDA's queue scaler) reach storage through its public endpoint; a VNet with private endpoints costs money every idle hour. Access is by Entra ID only (shared keys disabled, no anonymous blobs).
  // checkov:skip=CKV_AZURE_59: same reason as CKV_AZURE_35.
  // checkov:skip=CKV_AZURE_43: the name is take('<prefix><uniqueString>', 24): lowercase letters and digits, 3-24 characters, which checkov cannot evaluate.
  // checkov:skip=CKV_AZURE_206: run state is short-lived (runs, leases, reports kept days); ZRS survives a zone outage, geo-replication would double the bill for it.
  name: take(storageName, 24)
  location: location
  // Zone-redundant: a zone outage loses no run state; still $0 when idle.
  sku: { name: 'Standard_ZRS' }
  kind: 'StorageV2'
  properties: {
    // Managed identities only: no account key, no SAS signed with it.
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

resource blobContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: container
  properties: { publicAccess: 'None' }
}

// Queue bodies over 64 KiB wait in blobs under queue-overflow/; the ack
// deletes them, a crash may leave one: this removes leftovers.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'queue-overflow'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: { blobTypes: [ 'blockBlob' ], prefixMatch: [ '${container}/queue-overflow/' ] }
            actions: { baseBlob: { delete: { daysAfterModificationGreaterThan: 14 } } }
          }
        }
      ]
    }
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource runsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: table
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for q in concat(queueNames, poisonNames): {
  parent: queueService
  name: q
}]

// One identity for the intake app, one for the handler jobs.
resource intakeIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${prefix}-intake'
  location: location
}

resource workerIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${prefix}-worker'
  location: location
}

// Least privilege: data-plane roles on this storage account only (no
// management-plane rights, no other account), and secret reads on the one
// vault. Blob Data Contributor includes generating user delegation keys,
// which sign the report links.
var grants = [
  { principal: intakeIdentity.properties.principalId, role: roles.queueDataContributor }
  { principal: intakeIdentity.properties.principalId, role: roles.tableDataContributor }
  { principal: intakeIdentity.properties.principalId, role: roles.blobDataContributor }
  { principal: workerIdentity.properties.principalId, role: roles.queueDataContributor }
  { principal: workerIdentity.properties.principalId, role: roles.tableDataContributor }
  { principal: workerIdentity.properties.principalId, role: roles.blobDataContributor }
]

resource storageGrants 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for g in grants: {
  scope: storage
  name: guid(storage.id, g.principal, g.role)
  properties: {
    principalId: g.principal
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', g.role)
  }
}]

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

var vaultReaders = [
  intakeIdentity.properties.principalId
  workerIdentity.properties.principalId
]

resource vaultGrants 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principal in vaultReaders: {
  scope: vault
  name: guid(vault.id, principal, roles.keyVaultSecretsUser)
  properties: {
    principalId: principal
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}]

resource env 'Microsoft.App/managedEnvironments@2025-01-01' = {
  name: '${prefix}-env'
  location: location
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: logs.properties.customerId
        sharedKey: logs.listKeys().primarySharedKey
      }
    }
  }
}

// What every testexec container reads (docs/backends.md, "Azure backends").
// No storage key: TESTEXEC_AZURE_STORAGE_KEY stays unset, so the managed
// identity named by TESTEXEC_AZURE_CLIENT_ID signs every request.
var commonEnv = [
  { name: 'TESTEXEC_BACKEND', value: 'azure' }
  { name: 'TESTEXEC_LOG_FORMAT', value: 'json' }
  { name: 'RUST_LOG', value: 'info' }
  { name: 'TESTEXEC_AZURE_STORAGE_ACCOUNT', value: storage.name }
  { name: 'TESTEXEC_AZURE_CONTAINER', value: container }
  { name: 'TESTEXEC_AZURE_TABLE', value: table }
  { name: 'TESTEXEC_AZURE_QUEUE_PREFIX', value: queuePrefix }
  { name: 'TESTEXEC_AZURE_VISIBILITY_SECS', value: string(visibilitySeconds) }
  { name: 'TESTEXEC_AZURE_MAX_DEQUEUES', value: string(maxDequeues) }
  { name: 'TESTEXEC_GITHUB_APP_ID', value: githubAppId }
  { name: 'TESTEXEC_GITHUB_PRIVATE_KEY', secretRef: 'github-app-private-key' }
  { name: 'TESTEXEC_WEBHOOK_SECRET', secretRef: 'github-webhook-secret' }
]

// Secrets are Key Vault references, each read with its container's identity.
var secretNames = [ 'github-app-private-key', 'github-webhook-secret', 'api-token' ]
var intakeSecrets = [for s in secretNames: {
  name: s
  keyVaultUrl: '${vault.properties.vaultUri}secrets/${s}'
  identity: intakeIdentity.id
}]
var workerSecrets = [for s in secretNames: {
  name: s
  keyVaultUrl: '${vault.properties.vaultUri}secrets/${s}'
  identity: workerIdentity.id
}]

// The front door: GitHub webhooks and POST /runs. It only verifies and
// queues (--jobs 0): the handlers run as the jobs below.
resource intake 'Microsoft.App/containerApps@2025-01-01' = {
  name: '${prefix}-intake'
  location: location
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${intakeIdentity.id}': {} }
  }
  dependsOn: [ vaultGrants, storageGrants ]
  properties: {
    managedEnvironmentId: env.id
    configuration: {
      ingress: {
        external: true
        targetPort: 8080
        transport: 'http'
        allowInsecure: false
      }
      secrets: intakeSecrets
    }
    template: {
      containers: [
        {
          name: 'intake'
          image: image
          args: [ 'serve', '--jobs', '0' ]
          env: concat(commonEnv, [
            { name: 'TESTEXEC_AZURE_CLIENT_ID', value: intakeIdentity.properties.clientId }
            { name: 'TESTEXEC_API_TOKEN', secretRef: 'api-token' }
          ])
          resources: { cpu: json('0.25'), memory: '0.5Gi' }
          probes: [
            { type: 'Liveness', httpGet: { path: '/healthz', port: 8080 } }
            { type: 'Readiness', httpGet: { path: '/healthz', port: 8080 } }
          ]
        }
      ]
      scale: {
        minReplicas: 0
        maxReplicas: 5
        rules: [ { name: 'http', http: { metadata: { concurrentRequests: '50' } } } ]
      }
    }
  }
}

// One event-driven job per handler (API 2025-01-01: 2024-03-01 has no
// managed identity on scale rules): KEDA's azure-queue scaler starts one
// execution per waiting message (queueLength 1), each takes one message
// (`worker --once`), handles it, acks it and exits. A failed handler
// releases the message; after maxDequeues deliveries it lands in the
// poison queue.
resource jobs 'Microsoft.App/jobs@2025-01-01' = [for h in handlers: {
  name: '${prefix}-${h.name}'
  location: location
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${workerIdentity.id}': {} }
  }
  dependsOn: [ vaultGrants, storageGrants ]
  properties: {
    environmentId: env.id
    configuration: {
      triggerType: 'Event'
      replicaTimeout: h.timeout
      replicaRetryLimit: 0
      secrets: workerSecrets
      eventTriggerConfig: {
        parallelism: 1
        replicaCompletionCount: 1
        scale: {
          minExecutions: 0
          maxExecutions: 50
          pollingInterval: 10
          rules: [
            {
              name: 'queue'
              type: 'azure-queue'
              metadata: {
                accountName: storage.name
                queueName: '${queuePrefix}-${h.queue}'
                queueLength: '1'
              }
              identity: workerIdentity.id
            }
          ]
        }
      }
    }
    template: {
      containers: [
        {
          name: h.name
          image: h.image
          args: [ 'worker', '--queue', h.name, '--once', '--wait', '5' ]
          env: concat(commonEnv, [
            { name: 'TESTEXEC_AZURE_CLIENT_ID', value: workerIdentity.properties.clientId }
            { name: 'TESTEXEC_STATE_DIR', value: '/tmp/testexec' }
          ])
          resources: { cpu: json(h.cpu), memory: h.memory }
        }
      ]
    }
  }
}]

// The sweep, every 5 minutes as on AWS: runs past their deadline get the
// shards that never reported errored, lost hand-offs to report are queued
// again (`testexec sweep`, one pass, then exit). Nothing else stays up to
// do it: the intake scales to zero.
resource sweep 'Microsoft.App/jobs@2025-01-01' = {
  name: '${prefix}-sweep'
  location: location
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${workerIdentity.id}': {} }
  }
  dependsOn: [ vaultGrants, storageGrants ]
  properties: {
    environmentId: env.id
    configuration: {
      triggerType: 'Schedule'
      replicaTimeout: 300
      replicaRetryLimit: 0
      secrets: workerSecrets
      scheduleTriggerConfig: {
        cronExpression: '*/5 * * * *'
        parallelism: 1
        replicaCompletionCount: 1
      }
    }
    template: {
      containers: [
        {
          name: 'sweep'
          image: image
          args: [ 'sweep' ]
          env: concat(commonEnv, [
            { name: 'TESTEXEC_AZURE_CLIENT_ID', value: workerIdentity.properties.clientId }
            { name: 'TESTEXEC_STATE_DIR', value: '/tmp/testexec' }
          ])
          resources: { cpu: json('0.25'), memory: '0.5Gi' }
        }
      ]
    }
  }
}

output intakeUrl string = 'https://${intake.properties.configuration.ingress.fqdn}'
output storageAccount string = storage.name
output poisonQueues array = poisonNames
