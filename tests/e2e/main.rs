//! End-to-end tests of the built `kri` binary against the sandbox API.
