use clap::Parser;

// jemalloc (configured in .cargo/config.toml) hands freed pages back to the system soon after a burst
// of large publish bodies, where glibc keeps them in per-thread arenas: the idle footprint stays small.
// It is also faster than glibc on the small allocations of a request.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    packr::cli::run(packr::cli::Cli::parse())
}
