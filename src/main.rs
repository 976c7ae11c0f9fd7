//! The `stockcart` binary: everything lives in the library; see `cli.rs`.

/// glibc's malloc (with its free-chunk consolidation) was about a quarter of a replica's CPU
/// on the cart paths, which allocate and free many small buffers per request on every worker
/// thread; mimalloc's thread-local free lists do that work for much less (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    stockcart::cli::main()
}
