//! [`TsOptions`]: how the time-series layer is tuned, every bound named.

/// Milliseconds since the Unix epoch, now, from the system clock.
pub fn system_now_ms() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// Options of [`super::TimeSeries::open`].
#[derive(Clone, Debug)]
pub struct TsOptions {
    /// A series' head is sealed into its chunk once it holds this many
    /// points (or once it spans two chunk windows: then the closed
    /// windows' points are sealed).
    pub head_points_max: usize,
    /// Bytes of live log records (`ts/l/`, the points not yet in chunks)
    /// beyond which the heads pinning the oldest records are sealed early,
    /// so that memory and the replay on open stay bounded.
    pub log_bytes_max: u64,
    /// Chunks never straddle a multiple of this; retention drops whole
    /// windows.
    pub chunk_window_ms: i64,
    /// A window holding more points is split into several chunks.
    pub chunk_points_max: usize,
    /// A point older than the series' newest point by more than this is
    /// refused.
    pub out_of_order_window_ms: i64,
    /// Points held by all heads together; beyond it, adds are refused until
    /// sealing catches up (it only lags if the disk does).
    pub head_points_total_max: usize,
    /// Most series.
    pub series_max: usize,
    /// Most points in one add.
    pub add_points_max: usize,
    /// How often the background thread applies retention.
    pub retention_sweep_interval_ms: u64,
    /// The clock retention is measured against (tests substitute one).
    pub clock: fn() -> i64,
}

impl Default for TsOptions {
    fn default() -> Self {
        TsOptions {
            head_points_max: 1024,
            log_bytes_max: 64 << 20,
            chunk_window_ms: 2 * 3_600_000,
            chunk_points_max: 1024,
            out_of_order_window_ms: 3_600_000,
            head_points_total_max: 4 << 20,
            series_max: 1_000_000,
            add_points_max: 500_000,
            retention_sweep_interval_ms: 60_000,
            clock: system_now_ms,
        }
    }
}

impl TsOptions {
    /// Clamps every field into its sane range.
    pub(crate) fn sanitized(mut self) -> Self {
        self.head_points_max = self
            .head_points_max
            .clamp(1, super::chunk::CHUNK_POINTS_MAX);
        self.log_bytes_max = self.log_bytes_max.max(1);
        self.chunk_window_ms = self.chunk_window_ms.max(1);
        self.chunk_points_max = self
            .chunk_points_max
            .clamp(1, super::chunk::CHUNK_POINTS_MAX);
        self.out_of_order_window_ms = self.out_of_order_window_ms.max(0);
        self.head_points_total_max = self.head_points_total_max.max(1);
        self.series_max = self.series_max.max(1);
        self.add_points_max = self.add_points_max.max(1);
        self.retention_sweep_interval_ms = self.retention_sweep_interval_ms.max(10);
        self
    }

    /// Start of the chunk window holding `ts`.
    pub fn window_start(&self, ts: i64) -> i64 {
        super::aggregate::bucket_start(ts, self.chunk_window_ms)
    }
}
