//! Helpers the binary's tests share: a fresh directory, the binary run with arguments (and
//! without the ROOMSIM_* variables a developer's shell may set), and its printed text.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// A fresh directory of this test process: `roomsim-<prefix>-<name>-<pid>` under temp.
pub fn temp_dir(prefix: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("roomsim-{prefix}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The built `roomsim` with `args`.
pub fn roomsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roomsim"))
        .args(args)
        .env_remove("ROOMSIM_JOBS")
        .env_remove("ROOMSIM_SEED")
        .env_remove("ROOMSIM_SCENARIO")
        .output()
        .expect("roomsim runs")
}

/// Standard output then standard error.
pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}
