//! `glimpse data`: fetch, verify and list the data sets.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use glimpse::data::fetch::{FileStatus, fetch, verify};
use glimpse::data::registry;

use crate::cli::DataCommand;

/// `glimpse data`: a failing exit code when `verify` finds a corrupt file.
pub(crate) fn run(cmd: DataCommand, root: PathBuf) -> Result<ExitCode> {
    match cmd {
        DataCommand::Fetch { name, mirrors, only_mirrors } => {
            let spec = registry::by_name(&name)
                .with_context(|| format!("unknown data set `{name}` (known: mnist, fashion-mnist)"))?;
            let mut all = mirrors;
            if !only_mirrors {
                all.extend(spec.mirrors.iter().map(|s| s.to_string()));
            }
            let written = fetch(spec, &root, &all)?;
            println!(
                "{}: {} file(s) fetched, all verified, in {}",
                spec.name,
                written.len(),
                root.join(spec.dir).display()
            );
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Verify => {
            println!("data root: {}", root.display());
            let mut bad = false;
            for spec in registry::ALL {
                let st = verify(spec, &root);
                let ok = st.iter().filter(|(_, s)| matches!(s, FileStatus::Ok(_))).count();
                let absent: Vec<_> = st.iter().filter(|(_, s)| *s == FileStatus::Absent).map(|(f, _)| f.name).collect();
                let corrupt: Vec<_> = st
                    .iter()
                    .filter_map(|(_, s)| match s {
                        FileStatus::Corrupt(p, why) => Some(format!("{}: {why}", p.display())),
                        _ => None,
                    })
                    .collect();
                if ok == 0 && corrupt.is_empty() {
                    println!("{:<14} absent", spec.name);
                } else if corrupt.is_empty() && absent.is_empty() {
                    println!("{:<14} ok ({ok} files verified)", spec.name);
                } else {
                    println!("{:<14} {ok} ok, {} corrupt, {} missing", spec.name, corrupt.len(), absent.len());
                    for c in &corrupt {
                        println!("  CORRUPT {c}");
                    }
                    for a in &absent {
                        println!("  missing {a}");
                    }
                    bad |= !corrupt.is_empty();
                }
            }
            Ok(if bad { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        DataCommand::List => {
            for spec in registry::ALL {
                let dirs: Vec<String> = spec.search_dirs(&root).iter().map(|d| d.display().to_string()).collect();
                println!(
                    "{:<14} {} files; looked for in {}\n{:<14} {}",
                    spec.name,
                    spec.files.len(),
                    dirs.join(", "),
                    "",
                    spec.licence
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
