//! `sensor ui`: what the web console's configuration needs.

use std::io::BufRead as _;

use anyhow::Context as _;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum UiCommand {
    /// Print the argon2id hash of a password for `ui.users[].password_hash`.
    ///
    /// The password is read from the first line of standard input, never from the command
    /// line (which other users of the node can see):
    /// `printf '%s\n' "$PASSWORD" | sensor ui hash-password`.
    HashPassword,
}

pub fn run(command: UiCommand) -> anyhow::Result<()> {
    match command {
        UiCommand::HashPassword => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
            let password = line.trim_end_matches(['\n', '\r']);
            anyhow::ensure!(password.chars().count() >= 8, "the password must have at least 8 characters");
            println!("{}", sensor::console::hash_password(password)?);
            Ok(())
        }
    }
}
