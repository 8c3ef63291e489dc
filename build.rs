// Give the shared library a SONAME so programs link against the ABI major
// version (libmicrosnap.so.0), not a particular file.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmicrosnap.so.0");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
