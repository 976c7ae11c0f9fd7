//! The `stockcart` binary: everything lives in the library; see `cli.rs`.

fn main() -> std::process::ExitCode {
    stockcart::cli::main()
}
