//! `palisade-docgen OUT`: the packages' generated documentation, from the
//! command-line definitions themselves (never hand-written copies):
//!
//! - `OUT/man/palisade.1` (from `palisade_daemon::cli::command`),
//!   `OUT/man/palisadectl.1` and one `palisadectl-<command>.1` per
//!   subcommand (from `palisade_ctl::cli::Cli`);
//! - `OUT/completions/palisadectl.bash`, `_palisadectl` (zsh) and
//!   `palisadectl.fish`.
//!
//! `scripts/package.sh` runs it and installs the files where Debian looks.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out] = args.as_slice() else {
        eprintln!("usage: palisade-docgen OUT_DIR");
        return ExitCode::from(2);
    };
    match generate(Path::new(out)) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("palisade-docgen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Write every file under `out`; returns their paths.
fn generate(out: &Path) -> std::io::Result<Vec<PathBuf>> {
    let man = out.join("man");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    let mut written = Vec::new();

    written.push(man_page(&man, "palisade", palisade_daemon::cli::command())?);
    let mut ctl = palisade_ctl::cli::Cli::command();
    ctl.build();
    written.push(man_page(&man, "palisadectl", ctl.clone())?);
    // `build` named the subcommands `palisadectl-<command>` for display.
    for sub in ctl.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        let name = format!("palisadectl-{}", sub.get_name());
        written.push(man_page(&man, &name, sub.clone())?);
    }

    for (shell, file) in
        [(Shell::Bash, "palisadectl.bash"), (Shell::Zsh, "_palisadectl"), (Shell::Fish, "palisadectl.fish")]
    {
        let path = completions.join(file);
        let mut f = std::fs::File::create(&path)?;
        clap_complete::generate(shell, &mut ctl.clone(), "palisadectl", &mut f);
        written.push(path);
    }
    Ok(written)
}

fn man_page(dir: &Path, name: &str, cmd: clap::Command) -> std::io::Result<PathBuf> {
    let path = dir.join(format!("{name}.1"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd).title(name.to_uppercase()).render(&mut buf)?;
    std::fs::write(&path, buf)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every page and completion file is written, names its command and
    /// documents its options.
    #[test]
    fn generates_man_pages_and_completions() {
        let out = std::env::temp_dir().join(format!("palisade-docgen-{}", std::process::id()));
        let files = generate(&out).expect("generate");
        let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        let daemon = read("man/palisade.1");
        assert!(daemon.contains("\\-\\-list\\-plugins") && daemon.contains("\\-\\-validate\\-config"), "{daemon}");
        let ctl = read("man/palisadectl.1");
        assert!(ctl.contains("switchover") && ctl.contains("\\-\\-config\\-file"), "{ctl}");
        assert!(read("man/palisadectl-switchover.1").contains("\\-\\-candidate"));
        assert!(read("completions/palisadectl.bash").contains("switchover"));
        assert!(read("completions/_palisadectl").starts_with("#compdef palisadectl"));
        assert!(read("completions/palisadectl.fish").contains("complete -c palisadectl"));
        assert!(files.len() > 6);
        let _ = std::fs::remove_dir_all(&out);
    }
}
