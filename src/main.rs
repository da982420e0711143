//! The `esptun` command line.

use clap::{Parser, Subcommand};
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
    }
}
