use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = alto::cli::Cli::parse_args();
    alto::cli::init_logging(&cli.global);
    match alto::cli::run(cli) {
        Ok(status) => ExitCode::from(u8::from(status)),
        Err(e) => {
            let color = std::env::var_os("NO_COLOR").is_none()
                && std::io::IsTerminal::is_terminal(&std::io::stderr());
            let _ = miette::set_hook(Box::new(move |_| {
                Box::new(
                    miette::MietteHandlerOpts::new()
                        .color(color)
                        .unicode(color)
                        .terminal_links(false)
                        .build(),
                )
            }));
            let code = e.exit_code();
            eprintln!("{:?}", miette::Report::new(e));
            ExitCode::from(code)
        }
    }
}
