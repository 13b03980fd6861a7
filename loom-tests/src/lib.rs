//! Loom models of k8s-store's concurrency protocols; see tests/.
