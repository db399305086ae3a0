// Shared by the build scripts of kefu-knowledge and kefu.
//
// With the `semantic` feature, binaries and tests find libtorch where `LIBTORCH` pointed at
// build time, without `LD_LIBRARY_PATH`. The rpath is an old-style DT_RPATH so that it also
// serves libtorch's own dependencies (the CUDA runtime libraries beside libtorch_cpu.so).
fn libtorch_rpath() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if std::env::var_os("CARGO_FEATURE_SEMANTIC").is_none() {
        return;
    }
    if let Some(dir) = std::env::var_os("LIBTORCH") {
        let lib = std::path::Path::new(&dir).join("lib");
        println!(
            "cargo:rustc-link-arg=-Wl,--disable-new-dtags,-rpath,{}",
            lib.display()
        );
    }
}
