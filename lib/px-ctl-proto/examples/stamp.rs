//! Prints the drift stamp of this crate (see `px_ctl_proto::stamp`);
//! `scripts/capnp-regen.sh` writes it to `src/generated/STAMP`.

fn main() -> std::process::ExitCode {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    match px_ctl_proto::stamp::compute(dir) {
        Ok(s) => {
            print!("{s}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
