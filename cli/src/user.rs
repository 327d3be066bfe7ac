//! `items user`: the development users who sign in on the local Hosted UI.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::{Context, bail};
use items_local::hosted_ui::users::UserStore;

use crate::settings::default_data_dir;

#[derive(Debug, clap::Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub command: UserCommand,
    /// Where `users.json` lives (same as `items serve`).
    #[arg(long, env = "ITEMS_DATA_DIR", default_value_os_t = default_data_dir(), global = true)]
    pub data_dir: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Add a user (the password is asked for, or read from standard input).
    Add {
        username: String,
        /// Read the password from the first line of standard input (no prompt).
        #[arg(long)]
        password_stdin: bool,
        /// Replace the password of an existing user.
        #[arg(long)]
        replace: bool,
        /// Put the user in this Cognito group (repeatable), e.g. `items-admins`.
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// List the users: names and ids (`sub`), never passwords.
    List,
    /// Remove a user.
    Remove { username: String },
}

pub fn run(args: UserArgs) -> anyhow::Result<()> {
    let store = UserStore::in_dir(&args.data_dir);
    match args.command {
        UserCommand::Add { username, password_stdin, replace, groups } => {
            items_local::hosted_ui::users::validate_username(&username)?;
            let password = read_password(&username, password_stdin)?;
            let mut user = store.add(&username, &password, replace)?;
            if !groups.is_empty() {
                user = store.set_groups(&username, &groups)?;
            }
            println!(
                "{} user {} (sub {}) in {}",
                if replace { "Saved" } else { "Added" },
                user.username,
                user.sub,
                store.path().display()
            );
            println!("Sign in with it on the page of `items serve` (http://127.0.0.1:3000/ by default).");
        }
        UserCommand::List => {
            let users = store.list()?;
            if users.is_empty() {
                println!("No users in {}. Add one with: items user add NAME", store.path().display());
            }
            for user in users {
                let groups =
                    if user.groups.is_empty() { String::new() } else { format!("\tgroups {}", user.groups.join(",")) };
                println!("{}\t{}\tcreated {}{groups}", user.username, user.sub, user.created_at);
            }
        }
        UserCommand::Remove { username } => {
            store.remove(&username)?;
            println!("Removed user {username}");
        }
    }
    Ok(())
}

/// From standard input when asked to or when it is not a terminal; otherwise
/// prompts twice on the terminal, without echo.
fn read_password(username: &str, from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password")?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            bail!("no password on standard input");
        }
        return Ok(password);
    }
    let hidden = |prompt: &str| rpassword::prompt_password(prompt).context("reading the password");
    let password = hidden(&format!("Password for {username}: "))?;
    let again = hidden("Repeat it: ")?;
    if password != again {
        bail!("the passwords differ");
    }
    Ok(password)
}
