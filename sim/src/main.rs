//! The `roomsim` binary: a thin bootstrap over `sim::cli`.

fn main() -> std::process::ExitCode {
    sim::cli::main_impl(std::env::args_os())
}
