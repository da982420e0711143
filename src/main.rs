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
    /// Bring up the tunnel described by a configuration file (static SAs)
    /// and forward packets until SIGINT/SIGTERM.
    Run {
        /// The TOML configuration (see docs/CONFIG.md).
        #[arg(short, long)]
        config: PathBuf,
        /// I/O backend: auto, uring or syscall (overrides `[interface] io`).
        #[arg(long, value_parser = parse_io)]
        io: Option<esptun::policy::config::IoChoice>,
        /// Worker threads (overrides `[interface] workers`; 0 = one per core).
        #[arg(long)]
        workers: Option<usize>,
        /// Worker CPU pinning: auto, none, or CPUs such as 0,2 or 0-3
        /// (overrides `[interface] cpus`).
        #[arg(long, value_name = "auto|none|LIST")]
        cpus: Option<esptun::policy::config::Cpus>,
        /// Turn TUN/UDP offloads off.
        #[arg(long)]
        no_offloads: bool,
        /// Print counters every this many seconds.
        #[arg(long)]
        stats: Option<f64>,
        /// Stop after this many seconds (default: run until a signal).
        #[arg(long)]
        seconds: Option<f64>,
        /// Serve Prometheus metrics on ADDR:PORT (overrides `[interface] metrics`).
        #[arg(long, value_name = "ADDR:PORT")]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Run the whole packet pipeline in-process (no kernel I/O) and print
    /// Mpps, Gbit/s and efficiency against the raw AEAD.
    Bench {
        /// AEAD: aes128gcm16, aes256gcm16 or chacha20poly1305.
        #[arg(long, default_value = "aes128gcm16", value_parser = parse_alg)]
        alg: esptun::crypto::AeadAlg,
        /// AEAD backend (see `esptun backends`).
        #[arg(long, default_value_t = esptun::crypto::Backend::default(), value_parser = parse_backend)]
        backend: esptun::crypto::Backend,
        /// Worker counts to run, comma-separated (default: 1 and every core).
        #[arg(long, value_delimiter = ',')]
        workers: Vec<usize>,
        /// Inner packet sizes in bytes, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [64, 512, 1420, 8950])]
        sizes: Vec<usize>,
        /// Seconds per run.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Packets per batch.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// No live progress line.
        #[arg(long)]
        quiet: bool,
    },
}

fn parse_io(s: &str) -> Result<esptun::policy::config::IoChoice, String> {
    use esptun::policy::config::IoChoice;
    match s {
        "auto" => Ok(IoChoice::Auto),
        "uring" | "io_uring" | "io-uring" => Ok(IoChoice::Uring),
        "syscall" | "syscalls" => Ok(IoChoice::Syscall),
        _ => Err(format!("unknown I/O backend {s:?} (auto, uring, syscall)")),
    }
}

fn secs(v: Option<f64>, what: &str) -> Result<Option<std::time::Duration>, String> {
    match v {
        None => Ok(None),
        Some(s) if s > 0.0 && s < 1e7 => Ok(Some(std::time::Duration::from_secs_f64(s))),
        Some(s) => Err(format!("{what} {s} must be above 0")),
    }
}

fn parse_alg(s: &str) -> Result<esptun::crypto::AeadAlg, String> {
    esptun::crypto::AeadAlg::ALL
        .into_iter()
        .find(|a| a.name() == s)
        .ok_or_else(|| format!("unknown AEAD {s:?} (aes128gcm16, aes256gcm16, chacha20poly1305)"))
}

fn parse_backend(s: &str) -> Result<esptun::crypto::Backend, String> {
    esptun::crypto::Backend::ALL
        .iter()
        .copied()
        .find(|b| b.name() == s)
        .ok_or_else(|| format!("unknown backend {s:?} (see `esptun backends`)"))
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
        Cmd::Run { config, io, workers, cpus, no_offloads, stats, seconds, metrics } => {
            let opts = (|| -> Result<_, String> {
                Ok(esptun::control::run::RunOptions {
                    config,
                    io,
                    workers,
                    cpus,
                    no_offloads,
                    stats_every: secs(stats, "--stats")?,
                    duration: secs(seconds, "--seconds")?,
                    metrics,
                })
            })();
            match opts.and_then(|o| esptun::control::run::run(&o)) {
                Ok(total) => {
                    println!("{}", esptun::control::run::summary(&total));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("esptun run: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Bench { alg, backend, workers, sizes, seconds, batch, quiet } => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let workers =
                if workers.is_empty() { if cores > 1 { vec![1, cores] } else { vec![1] } } else { workers };
            if !(0.05..=3600.0).contains(&seconds) || batch == 0 || workers.contains(&0) {
                eprintln!("esptun bench: --seconds must be 0.05..3600, --batch and --workers above 0");
                return ExitCode::FAILURE;
            }
            if let Some(s) = sizes.iter().find(|s| !(28..=9000).contains(*s)) {
                eprintln!("esptun bench: packet size {s} is outside 28..=9000");
                return ExitCode::FAILURE;
            }
            let cfg = esptun::ops::bench::BenchConfig {
                alg,
                backend,
                workers,
                sizes,
                duration: std::time::Duration::from_secs_f64(seconds),
                batch,
                progress: !quiet,
            };
            let rows = esptun::ops::bench::run(&cfg);
            print!("{}", esptun::ops::bench::table(&cfg, &rows));
            ExitCode::SUCCESS
        }
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
            for w in esptun::policy::check::secret_warnings(&cfg) {
                eprintln!("warning: {w}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
