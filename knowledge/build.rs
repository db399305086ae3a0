//! Embeds the default knowledge base (`faq/*.yaml`) into the library, so the `kefu` binary
//! works from anywhere without the source tree, and with the `semantic` feature records where
//! libtorch is (see `libtorch_rpath.rs`).

use std::fmt::Write as _;
use std::path::Path;

include!("libtorch_rpath.rs");

fn main() {
    libtorch_rpath();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("faq");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut out = String::from("/// The default FAQ files: (file name, contents).\npub const FILES: &[(&str, &str)] = &[\n");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let _ = writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            f.display().to_string()
        );
    }
    out.push_str("];\n");
    let target =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("default_faq.rs");
    std::fs::write(target, out).expect("write default_faq.rs");
}
