//! The `esptun` command line.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Userspace IPsec VPN endpoint (IKEv2 + ESP-in-UDP on a TUN device).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the AEAD backends compiled into this build.
    Backends,
    /// Validate a policy file and print the compiled policy (exit 1 on errors).
    Check {
        /// The TOML policy file (see docs/CONFIG.md).
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Backends => {
            for b in esptun::crypto::Backend::ALL {
                println!("{b}");
            }
            ExitCode::SUCCESS
        }
        Cmd::Check { file } => check(&file),
    }
}

fn check(file: &std::path::Path) -> ExitCode {
    let cfg = match esptun::policy::config::Config::load(file) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors.iter() {
                eprintln!("{e}");
            }
            eprintln!("{}: {} error(s); nothing was changed", file.display(), errors.len());
            return ExitCode::FAILURE;
        }
    };
    match esptun::policy::check::render(&cfg) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
