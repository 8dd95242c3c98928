//! OpenTelemetry export from the binaries (feature `otlp`): with `OTEL_EXPORTER_OTLP_ENDPOINT` set,
//! a background task sends the log records the adapter kept (`paracell_domain::observability::otlp`)
//! every `OTEL_BLRP_SCHEDULE_DELAY` milliseconds (default 1000), over the same HTTP client the cells
//! use for peers. On Lambda the task runs only while an invocation does (the sandbox is frozen in
//! between), so records wait for the next invocation; a process that ends loses at most one interval.

/// Starts the export task when an endpoint is configured; `service` is the default `service.name`
/// (`OTEL_SERVICE_NAME` wins). Without the `otlp` feature, says once that the endpoint is ignored.
pub fn spawn_otlp_export(service: &str) {
    #[cfg(feature = "otlp")]
    {
        use paracell_domain::observability::otlp::OtlpExport;
        let Some(export) = OtlpExport::from_env(service) else {
            return;
        };
        tokio::spawn(async move {
            let client = crate::http_client::HyperClient::new();
            let mut ticks = tokio::time::interval(export.interval);
            loop {
                ticks.tick().await;
                if let Err(e) = export.export(&client).await {
                    // Not through `tracing`: an exporter that logs its own failure feeds itself.
                    eprintln!(
                        "{}",
                        crate::logs::raw_line("WARN", "otlp export failed", &e.to_string())
                    );
                }
            }
        });
    }
    #[cfg(not(feature = "otlp"))]
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        tracing::warn!(
            service,
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but this binary was built without the `otlp` feature: not exporting"
        );
    }
}
