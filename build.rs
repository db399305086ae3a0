//! With the `semantic` feature, the `kefu` binary records where libtorch is.
include!("knowledge/libtorch_rpath.rs");

fn main() {
    libtorch_rpath();
}
