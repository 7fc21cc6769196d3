#![forbid(unsafe_code)]
//! `cargo run --release -p fluxgate-demo`: the demo, from the command line (see the
//! library's documentation for what it shows and its options).

use fluxgate_demo::{Options, USAGE, run, stop_on_ctrl_c};

fn main() -> std::process::ExitCode {
    let opts = match Options::from_args(std::env::args().skip(1)) {
        Ok(opts) => opts,
        Err(message) if message == USAGE => {
            println!("{USAGE}");
            return std::process::ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("{message}");
            return std::process::ExitCode::from(2);
        }
    };
    stop_on_ctrl_c(opts.stop.clone());
    match run(opts) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
