//! `plugin build`: the district's plugin zip, from `[powerschool.fields]`.

use super::CliError;
use crate::config::Settings;
use crate::powerschool::plugin::Plugin;
use std::path::Path;

pub(super) fn build(
    settings: &Settings,
    out: &Path,
    version: Option<&str>,
) -> Result<(), CliError> {
    let mut plugin = Plugin::for_fields(&settings.powerschool.fields);
    if let Some(version) = version {
        let ok = !version.is_empty()
            && version
                .split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
        if !ok {
            return Err(CliError::Usage(format!(
                "--version {version:?} must be numbers separated by dots, e.g. 1.2.0"
            )));
        }
        plugin.info.version = version.to_string();
    }
    // Checked before the file is touched: a refused plugin leaves no zip.
    plugin.check()?;
    let io = |source| CliError::Io {
        what: format!("cannot write the plugin zip {}", out.display()),
        source,
    };
    let partial = out.with_extension("zip.partial");
    let file = std::fs::File::create(&partial).map_err(io)?;
    if let Err(e) = plugin.write_zip(std::io::BufWriter::new(file)) {
        // Nothing half-written is left beside the zip.
        let _ = std::fs::remove_file(&partial);
        return Err(CliError::Usage(format!(
            "{e} (writing {}); check that the folder is writable and has space, then run              `student-sync plugin build` again",
            partial.display()
        )));
    }
    std::fs::rename(&partial, out).map_err(io)?;
    let fields = &settings.powerschool.fields;
    println!(
        "Wrote {} (plugin {} version {}): {} queries, an access request of {} columns.",
        out.display(),
        plugin.info.name,
        plugin.info.version,
        plugin.queries.len(),
        plugin.access_request().len()
    );
    println!("The district's fields it reads:");
    for (key, column) in fields.named() {
        println!("  {:<45} ({key})", column.to_string());
    }
    println!(
        "  enrolment type {:?} marks an independent student (powerschool.fields.independent_enrolment_type)",
        fields.independent_enrolment_type
    );
    println!(
        "Install it in System > System Settings > Plugin Management, approve its access request, \
         enable it, then run `student-sync doctor`."
    );
    Ok(())
}
