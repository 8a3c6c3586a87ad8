//! Where every HTTP client for services outside the API server starts (Prometheus, webhooks,
//! the load tester): reqwest on rustls with ring, the crypto kube uses too. No I/O.

/// A client builder with ring installed as the process's rustls provider (reqwest is built
/// without one of its own). Roots come from the system; `danger_accept_invalid_certs` and
/// the other TLS options of the builder work as documented.
pub fn client_builder() -> reqwest::ClientBuilder {
    // Err means a provider is installed already, which is all this needs.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// A client with the defaults of [`client_builder`].
pub fn client() -> reqwest::Client {
    client_builder()
        .build()
        .expect("an HTTP client with the default settings builds")
}
