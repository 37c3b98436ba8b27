//! `glimpse`: train, evaluate, inspect and benchmark attention models.
//!
//! This file only parses the command line and dispatches: each subcommand lives in its own
//! module (the clap types in [`cli`]).

mod bench;
mod checkpoint;
mod cli;
mod data;
mod eval;
mod serve;
mod text;
mod tools;
mod train;
mod viz;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command, VizCommand};

// mimalloc instead of glibc's malloc: autodiff allocates and frees many short-lived gradient
// buffers every step, and glibc returned their pages to the kernel only to fault them back in
// (`clear_page_erms` led the profile of `glimpse bench ntm`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (index 15 of `mi_option_e` in both of its versions).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Parses, sets up threads and logging, and dispatches; errors are printed on one line.
fn main() -> ExitCode {
    // Never hand freed pages back to the kernel: a training step frees and reallocates the
    // same buffers, and each purge made the next step fault in and zero fresh pages
    // (`clear_page_erms` was 6% of `glimpse bench draw`; this took it from 47 to 62 images/s).
    // SAFETY: setting an option is allowed at any time; done before any thread starts.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        // SAFETY: set before any thread is started; rayon reads it when its pool starts.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the parsed command.
fn dispatch(cli: Cli) -> Result<ExitCode> {
    let root: PathBuf = glimpse::data::resolve_root(cli.data_dir.clone());
    let device = cli.device.as_str();
    match cli.command {
        Command::Train(a) => train::run(&a, root, device)?,
        Command::Eval(e) => eval::run(&e, root, device)?,
        Command::Data { command } => return data::run(command, root),
        Command::Bench(b) => bench::run(&b, cli.threads, device)?,
        Command::Viz { command: VizCommand::Ram { checkpoint, n, start, out, scale } } => {
            viz::ram(&checkpoint, start, n, &viz::Picture { out: &out, scale, root, device })?
        }
        Command::Viz { command: VizCommand::Ntm { checkpoint, len, repeats, seed, out, scale, all_locations } } => {
            let which = viz::NtmSequence { len, repeats, seed };
            viz::ntm(&checkpoint, which, all_locations, &viz::Picture { out: &out, scale, root, device })?
        }
        Command::Viz { command: VizCommand::Draw { checkpoint, n, seed, out, scale } } => {
            viz::draw(&checkpoint, n, seed, &viz::Picture { out: &out, scale, root, device })?
        }
        Command::Saliency { checkpoint, index, class, out, scale } => {
            viz::saliency(&checkpoint, index, class, &viz::Picture { out: &out, scale, root, device })?
        }
        Command::Translate { checkpoint, text, file, beam, alignment, scale } => {
            let input = match (text, file) {
                (Some(t), _) => text::Input::Text(t),
                (None, Some(f)) => text::Input::File(f),
                (None, None) => unreachable!("clap requires TEXT or --file"),
            };
            text::translate(&checkpoint, input, beam, alignment.as_deref(), scale, device)?
        }
        Command::Write { checkpoint, text, bias, out, samples, seed, max_steps, prime, window, held_out } => {
            let w = text::WriteArgs { text, bias, samples, seed, max_steps, prime, window, held_out };
            text::write(&checkpoint, w, &out, root, device)?
        }
        Command::Average { checkpoints, out, data_seed, json } => {
            tools::average(&checkpoints, &out, data_seed, json, root, device)?
        }
        Command::Widen { checkpoint, hidden, out } => tools::widen(&checkpoint, hidden, &out, device)?,
        Command::GrowMemory { checkpoint, rows, out } => tools::grow_memory(&checkpoint, rows, &out, device)?,
        Command::Serve { checkpoints, addr, bench, rounds, json } => {
            let bench = bench.then_some(serve::BenchArgs { rounds, json });
            serve::run(&serve::ServeArgs { checkpoints, addr, root, device: device.to_string(), bench })?
        }
    }
    Ok(ExitCode::SUCCESS)
}
