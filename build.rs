// Migrations are embedded into the binary: rebuild when one is added.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
