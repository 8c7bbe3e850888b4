//! The `roomsim` binary: a thin bootstrap over `roomsim::cli`.
//!
//! mimalloc is the global allocator: a simulated run is allocation-bound (futures, frames,
//! rows, JSON), and glibc's malloc/free were about a quarter of its profile. Allocation
//! addresses never reach a result, so this does not touch determinism.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, so printing to a closed pipe (`roomsim explore … | head`) made
    // `println!` panic. With the default action the process ends quietly, like `cat` does.
    #[cfg(unix)]
    // SAFETY: called first in main, before any thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    roomsim::cli::main_impl(std::env::args_os())
}
