//! Prints the comparison table of the last `cargo bench --bench layer` run
//! from criterion's JSON. Usage: `summary [CRITERION_DIR]`.

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(sessionware_rivals::summary::criterion_dir);
    println!("criterion results in {}\n", dir.display());
    print!("{}", sessionware_rivals::summary::table(&dir));
}
