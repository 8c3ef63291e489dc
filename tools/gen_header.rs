//! Writes include/microsnap.h from the crate's `src/ffi` with cbindgen
//! (`make header`). The test suite regenerates it in memory and fails when
//! the committed file differs.
fn main() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let config =
        cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).expect("read cbindgen.toml");
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("{dir}/include/microsnap.h"));
    cbindgen::Builder::new()
        // Only the boundary module: engine constants are not part of the ABI.
        .with_src(format!("{dir}/src/ffi/mod.rs"))
        .with_config(config)
        .generate()
        .expect("generate header")
        .write_to_file(&out);
    eprintln!("wrote {out}");
}
