//! Benchmarks of the dialogue engine (being written).

fn main() {}
