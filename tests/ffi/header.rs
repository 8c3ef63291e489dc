//! The committed include/microsnap.h must be exactly what cbindgen generates
//! from src/ffi now (regenerate with `make header`).
#[test]
fn committed_header_is_current() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).unwrap();
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_src(format!("{dir}/src/ffi/mod.rs"))
        .with_config(config)
        .generate()
        .expect("cbindgen failed")
        .write(&mut fresh);
    let committed = std::fs::read(format!("{dir}/include/microsnap.h")).unwrap();
    assert!(
        committed == fresh,
        "include/microsnap.h is out of date: run `make header` and commit it"
    );
}

#[test]
fn header_lists_every_error_code() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let header = std::fs::read_to_string(format!("{dir}/include/microsnap.h")).unwrap();
    for (num, name) in microsnap::ffi::all_codes() {
        let line = format!("#define MSNAP_ERR_{} {num}", name.to_uppercase());
        assert!(header.contains(&line), "missing {line}");
    }
}
