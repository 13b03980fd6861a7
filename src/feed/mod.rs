//! What feeds the stores: the indexer (keys from fields), the watch adapter, the YAML
//! configuration and the stores it starts.

pub mod config;
pub(crate) mod indexer;
pub(crate) mod keys;
pub mod stores;
pub mod watch;
