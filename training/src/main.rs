//! `memeguard-train`: the training command line (subcommands land with the training issues).

fn main() {
    eprintln!("memeguard-train: no subcommands yet");
    std::process::exit(2);
}
