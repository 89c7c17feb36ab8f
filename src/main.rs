//! Thin shim: the command line lives in the library.

fn main() -> std::process::ExitCode {
    pingora::tls::install_default_crypto_provider();
    attachment_gateway::cli::main()
}
