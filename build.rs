//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!`
//! embeds the `migrations` directory at compile time, and cargo would not
//! otherwise know to look at it (a new migration file would be left out of
//! an incremental build).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
