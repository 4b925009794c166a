//! Compiles the C helpers: INCRBYFLOAT needs C's `long double`.

fn main() {
    println!("cargo:rerun-if-changed=csrc/ldouble.c");
    cc::Build::new()
        .file("csrc/ldouble.c")
        .warnings(true)
        .compile("ferrokv_ldouble");
}
