//! The agent's /proc parsers against captured files (tests/data/proc/):
//! this machine's, and odd ones (many CPUs, old kernels, names with
//! spaces, counters at their limits and wrapped).
#![allow(clippy::unwrap_used)]

use cityhall::agent::cpu::{parse_stat, usage, CpuTimes, USAGE_FIELDS};
use cityhall::agent::diskio::parse_diskstats;
use cityhall::agent::fs::{parse_mounts, select, unescape, FsUsage};
use cityhall::agent::mem::parse_meminfo;
use cityhall::agent::net::parse_net_dev;
use cityhall::agent::sample::{label_value, Sample};
use cityhall::agent::system::{count_processes, parse_loadavg, parse_uptime};
use cityhall::ts::aggregate::{page, Aggregation};
use cityhall::ts::Point;

fn data(name: &str) -> String {
    let path = format!("{}/tests/data/proc/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap()
}

#[test]
fn stat_of_this_machine() {
    let s = parse_stat(&data("stat")).unwrap();
    let names: Vec<&str> = s.cpus.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["cpu-total", "cpu0", "cpu1"]);
    let (_, total) = s.cpus[0];
    assert_eq!(
        total,
        CpuTimes {
            user: 37573,
            nice: 35071,
            system: 16520,
            idle: 17134,
            iowait: 1300,
            irq: 0,
            softirq: 147,
            steal: 829,
            guest: 0,
            guest_nice: 0
        }
    );
    assert_eq!(s.context_switches, Some(725_756));
    assert_eq!(s.processes_forked, Some(17_701));
    assert_eq!(s.interrupts, Some(502_120));
    assert_eq!(s.procs_running, Some(8));
    assert_eq!(s.procs_blocked, Some(0));
    assert_eq!(s.boot_time, Some(1_795_824_732));
}

#[test]
fn stat_with_64_cpus_and_with_7_fields() {
    let s = parse_stat(&data("stat_64cpu")).unwrap();
    assert_eq!(s.cpus.len(), 65);
    assert_eq!(s.cpus[64].0, "cpu63");
    // The total line is the sum of the per-CPU lines, field by field.
    let sum: u64 = s.cpus[1..].iter().map(|(_, t)| t.user).sum();
    assert_eq!(s.cpus[0].1.user, sum);
    assert_eq!(s.context_switches, Some(123_456_789_012));
    assert_eq!(s.interrupts, Some(9_876_543_210));

    let s = parse_stat(&data("stat_7fields")).unwrap();
    assert_eq!(s.cpus.len(), 2);
    assert_eq!(s.cpus[1].1.softirq, 5);
    assert_eq!((s.cpus[1].1.steal, s.cpus[1].1.guest), (0, 0));
}

#[test]
fn stat_refuses_what_it_cannot_read() {
    let e = parse_stat("cpu  1 2 x 4\n").unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.to_string().contains("/proc/stat line 1"), "{e}");
    assert!(e.to_string().contains("\"x\""), "{e}");
    assert!(parse_stat("cpu0 1 2 3 4\n")
        .unwrap_err()
        .to_string()
        .contains("no `cpu` line"));
    assert!(parse_stat("cpu 1 2\n")
        .unwrap_err()
        .to_string()
        .contains("expected at least 4"));
    assert!(parse_stat("cpu 1 2 3 4\nctxt\n")
        .unwrap_err()
        .to_string()
        .contains("ctxt has no value"));
}

fn times(v: [u64; 8]) -> CpuTimes {
    CpuTimes {
        user: v[0],
        nice: v[1],
        system: v[2],
        idle: v[3],
        iowait: v[4],
        irq: v[5],
        softirq: v[6],
        steal: v[7],
        guest: 0,
        guest_nice: 0,
    }
}

#[test]
fn cpu_usage_is_the_share_of_each_mode_between_readings() {
    let a = times([100, 0, 50, 800, 10, 0, 5, 0]);
    let b = times([130, 0, 60, 850, 15, 0, 10, 0]); // 100 ticks later
    let u = usage(&a, &b).unwrap();
    let by_name = |n: &str| u[USAGE_FIELDS.iter().position(|f| *f == n).unwrap()];
    assert_eq!(by_name("usage_user"), 30.0);
    assert_eq!(by_name("usage_system"), 10.0);
    assert_eq!(by_name("usage_idle"), 50.0);
    assert_eq!(by_name("usage_softirq"), 5.0);
    assert_eq!(by_name("usage_iowait"), 5.0);
    assert!((u.iter().take(8).sum::<f64>() - 100.0).abs() < 1e-9);
    // No tick passed, or a counter went backwards (wrapped, CPU replugged):
    // no figure rather than a wrong one.
    assert_eq!(usage(&a, &a), None);
    let wrapped = times([5, 0, 60, 850, 10, 0, 10, 0]);
    assert_eq!(usage(&a, &wrapped), None);
}

#[test]
fn meminfo_new_and_old_kernels() {
    let m = parse_meminfo(&data("meminfo")).unwrap();
    assert_eq!(m.total, 24_684_096 * 1024);
    assert_eq!(m.available, 23_338_544 * 1024);
    assert_eq!(m.used(), (24_684_096 - 23_338_544) * 1024);
    assert!((m.used_percent() - 100.0 * 1_345_552.0 / 24_684_096.0).abs() < 1e-9);
    assert_eq!((m.swap_total, m.swap_used_percent()), (0, 0.0));

    let m = parse_meminfo(&data("meminfo_old")).unwrap();
    assert_eq!(m.available, (512_000 + 102_400 + 409_600) * 1024);
    assert_eq!(m.swap_used(), 768_000 * 1024);
    assert_eq!(m.swap_used_percent(), 75.0);

    assert!(parse_meminfo("MemFree: 1 kB\n")
        .unwrap_err()
        .to_string()
        .contains("no MemTotal"));
    let e = parse_meminfo("MemTotal: 12 MB\n").unwrap_err();
    assert!(e.to_string().contains("unknown unit \"MB\""), "{e}");
}

#[test]
fn diskstats_of_every_kernel_layout() {
    let d = parse_diskstats(&data("diskstats")).unwrap();
    let vda = d.iter().find(|d| d.name == "vda").unwrap();
    assert_eq!(vda.reads, 33_853);
    assert_eq!(vda.read_bytes, 4_526_514 * 512);
    assert_eq!(vda.writes, 21_663);
    assert_eq!(vda.write_bytes, 26_673_032 * 512);
    assert_eq!(vda.io_time_ms, 30_648);
    assert_eq!(vda.weighted_io_time_ms, 265_677);
    assert!(d
        .iter()
        .find(|d| d.name == "loop0")
        .unwrap()
        .is_idle_since_boot());
    assert!(!vda.is_idle_since_boot());

    let d = parse_diskstats(&data("diskstats_4_18")).unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(
        (d[1].name.as_str(), d[1].reads, d[1].io_time_ms),
        ("sda1", 900, 390)
    );

    let d = parse_diskstats(&data("diskstats_2_6")).unwrap();
    assert_eq!(d[0].reads, u64::MAX);
    // Sectors to bytes saturates rather than wrapping.
    assert_eq!(d[0].read_bytes, 4_294_967_295 * 512);
}

#[test]
fn diskstats_device_names_with_spaces() {
    let d = parse_diskstats(&data("diskstats_spaces")).unwrap();
    let names: Vec<&str> = d.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["vda", "my disk", "backup 2", "loop0"]);
    assert_eq!((d[1].reads, d[1].write_bytes), (10, 160 * 512));
    assert_eq!((d[2].reads, d[2].merged_reads), (5, 6));
    let e = parse_diskstats(" 8 0 sda 1 2 3\n").unwrap_err();
    assert!(e.to_string().contains("11, 15 or 17 counters"), "{e}");
}

#[test]
fn net_dev_of_this_machine_and_odd_names() {
    let d = parse_net_dev(&data("net_dev")).unwrap();
    let names: Vec<&str> = d.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["lo", "ifb0", "ifb1", "eth0"]);
    let eth0 = &d[3];
    assert_eq!((eth0.bytes_recv, eth0.packets_recv), (111_063_059, 2976));
    assert_eq!((eth0.bytes_sent, eth0.packets_sent), (150_822, 1482));

    let d = parse_net_dev(&data("net_dev_odd")).unwrap();
    let names: Vec<&str> = d.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["lo", "my nic", "vlan:10"]);
    assert_eq!(d[0].bytes_recv, u64::MAX);
    assert_eq!(
        (d[1].err_in, d[1].drop_in, d[1].err_out, d[1].drop_out),
        (1, 2, 3, 4)
    );
    assert_eq!((d[2].bytes_recv, d[2].bytes_sent), (5, 9));

    let e = parse_net_dev("eth0: 1 2 3\n").unwrap_err();
    assert!(e.to_string().contains("3 counters, expected 16"), "{e}");
}

#[test]
fn a_wrapped_counter_reads_as_a_reset_in_rate() {
    let before = parse_net_dev(&data("net_dev_odd")).unwrap();
    let after = parse_net_dev(&data("net_dev_wrapped")).unwrap();
    let (a, b) = (&before[1], &after[0]);
    assert_eq!(a.name, b.name);
    // 32-bit bytes_recv went 4294967290 -> 10 over 10 s: the rate counts
    // the drop as a reset, so it sees an increase of 10, never a negative.
    let pts = [
        Point {
            ts: 0,
            value: a.bytes_recv as f64,
        },
        Point {
            ts: 10_000,
            value: b.bytes_recv as f64,
        },
    ];
    let r = page(pts.iter().copied().map(Ok), Some(Aggregation::Rate), 0, 10).unwrap();
    assert_eq!(
        r.points,
        vec![Point {
            ts: 10_000,
            value: 1.0
        }]
    );
}

#[test]
fn mounts_keep_data_file_systems_once() {
    let m = parse_mounts(&data("mounts")).unwrap();
    let kept: Vec<String> = select(&m)
        .into_iter()
        .map(|m| format!("{} {}", m.path, m.fstype))
        .collect();
    assert_eq!(kept, ["/ ext4"]);

    let m = parse_mounts(&data("mounts_spaces")).unwrap();
    assert_eq!(m[3].path, "/mnt/My Photos");
    assert_eq!(m[5].path, "/back\\slash\ttab");
    let kept: Vec<String> = select(&m).into_iter().map(|m| m.path).collect();
    assert_eq!(
        kept,
        ["/", "/mnt/My Photos", "/back\\slash\ttab", "/mnt/nfs"]
    );
    assert_eq!(unescape("a\\040b\\9"), "a b\\9");
}

#[test]
fn fs_usage_like_df() {
    // 4 KiB blocks: 1000 total, 300 free, 250 available to users.
    let u = FsUsage::from_blocks(4096, 1000, 300, 250, 64, 60);
    assert_eq!(u.total, 4_096_000);
    assert_eq!(u.used(), 700 * 4096);
    assert!((u.used_percent() - 100.0 * 700.0 / 950.0).abs() < 1e-9);
    assert_eq!(FsUsage::default().used_percent(), 0.0);
}

#[test]
fn loadavg_uptime_and_processes() {
    let l = parse_loadavg(&data("loadavg")).unwrap();
    assert_eq!((l.load1, l.load5, l.load15), (7.88, 4.67, 2.10));
    assert_eq!((l.running, l.threads), (8, 149));
    assert_eq!(parse_uptime(&data("uptime")).unwrap(), 544.34);
    assert!(parse_loadavg("0.1 0.2\n")
        .unwrap_err()
        .to_string()
        .contains("load15 is missing"));
    assert!(parse_uptime("-1 2\n").is_err());
    let names = ["1", "42", "self", "net", "4242", "1a"];
    assert_eq!(count_processes(names.into_iter()), 3);
}

#[test]
fn label_values_always_make_a_valid_series() {
    assert_eq!(label_value("my disk"), "my disk");
    assert_eq!(label_value("a,b={c}\n"), "a_b__c__");
    assert_eq!(label_value(""), "_");
    assert_eq!(label_value(&"x".repeat(300)).len(), 256);
    let mut s = Sample::new(1);
    s.push("disk.used_percent", Some(("path", "/a,b")), 1.0);
    s.push("disk.used_percent", Some(("path", "/")), f64::NAN);
    s.push("bad name!", None, 1.0);
    assert_eq!(s.points.len(), 1);
    assert_eq!(s.points[0].0.canonical(), "disk.used_percent{path=/a_b}");
    let b = s.batches(10_000);
    assert_eq!((b.len(), b[0].len(), b[0][0].points[0].ts), (1, 1, 1));
}

/// Copies captured files into a directory laid out like /proc.
fn fake_proc(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (to, from) in files {
        let path = dir.path().join(to);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data(from)).unwrap();
    }
    for pid in ["1", "42", "4242"] {
        std::fs::create_dir(dir.path().join(pid)).unwrap();
    }
    dir
}

#[test]
fn a_sample_of_a_64_cpu_machine_with_odd_devices() {
    use cityhall::agent::Sampler;
    let proc = fake_proc(&[
        ("stat", "stat_64cpu"),
        ("meminfo", "meminfo_old"),
        ("loadavg", "loadavg"),
        ("uptime", "uptime"),
        ("diskstats", "diskstats_spaces"),
        ("net/dev", "net_dev_odd"),
        ("self/mounts", "mounts_spaces"),
    ]);
    let mut sampler = Sampler::new(proc.path());
    sampler.prime().unwrap();
    // 100 more ticks of every mode on every CPU: each mode then has 12.5 %
    // of the time (guest modes are inside user and nice, so 0 here).
    let later: String = data("stat_64cpu")
        .lines()
        .map(|l| {
            if !l.starts_with("cpu") {
                return format!("{l}\n");
            }
            let mut w = l.split_ascii_whitespace();
            let name = w.next().unwrap();
            let v: Vec<String> = w
                .enumerate()
                .map(|(i, n)| {
                    let n: u64 = n.parse().unwrap();
                    (if i < 8 { n + 100 } else { n }).to_string()
                })
                .collect();
            format!("{name} {}\n", v.join(" "))
        })
        .collect();
    std::fs::write(proc.path().join("stat"), later).unwrap();
    let (s, errors) = sampler.sample(1_700_000_000_000);
    let find = |name: &str| {
        s.points
            .iter()
            .find(|(k, _)| k.canonical() == name)
            .map(|(_, v)| *v)
    };
    let cpu = s
        .points
        .iter()
        .filter(|(k, _)| k.name().starts_with("cpu."))
        .count();
    assert_eq!(cpu, 65 * 10);
    assert_eq!(find("cpu.usage_user{cpu=cpu63}"), Some(12.5));
    assert_eq!(find("cpu.usage_steal{cpu=cpu-total}"), Some(12.5));
    assert_eq!(find("cpu.usage_guest{cpu=cpu7}"), Some(0.0));
    assert_eq!(find("system.n_cpus"), Some(64.0));
    assert_eq!(find("kernel.context_switches"), Some(123_456_789_012.0));
    assert_eq!(find("processes.total"), Some(3.0));
    assert_eq!(find("mem.used_percent"), Some(50.0));
    assert_eq!(find("diskio.reads{name=my disk}"), Some(10.0));
    assert_eq!(find("diskio.reads{name=backup 2}"), Some(5.0));
    assert_eq!(
        find("diskio.reads{name=loop0}"),
        None,
        "idle devices are left out"
    );
    assert_eq!(find("net.bytes_recv{interface=lo}"), Some(u64::MAX as f64));
    assert_eq!(find("net.err_out{interface=my nic}"), Some(3.0));
    assert_eq!(find("net.bytes_sent{interface=vlan:10}"), Some(9.0));
    assert!(find("disk.total{path=/}").unwrap() > 0.0);
    // The other mounts are not on this machine: each error is named.
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("statvfs /mnt/My Photos:")),
        "{errors:?}"
    );
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(s.points.iter().all(|(_, v)| v.is_finite()));

    // A file that is missing costs its series only, and says which.
    std::fs::remove_file(proc.path().join("meminfo")).unwrap();
    let (s, errors) = sampler.sample(1_700_000_010_000);
    assert!(errors.iter().any(|e| e.contains("meminfo")), "{errors:?}");
    assert!(s.points.iter().all(|(k, _)| !k.name().starts_with("mem.")));
    assert!(s.points.iter().any(|(k, _)| k.name() == "system.load1"));
}
