use clap::Parser;

fn main() -> std::process::ExitCode {
    packr::cli::run(packr::cli::Cli::parse())
}
