//! A YAML tree that remembers where each node stands.
