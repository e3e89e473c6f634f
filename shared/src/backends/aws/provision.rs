//! Creates the table, bucket and queues the way `template.yaml` does, for
//! tests and local runs against emulators. (Being implemented.)
