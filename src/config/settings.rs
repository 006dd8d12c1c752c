//! The table of every setting healthd reads: variable, flag, default and help line. `--help`, the
//! README's settings table and the parser all read it; a test checks the README against it.

/// One setting: an environment variable, the `healthd serve` flag that overrides it, its default
/// as shown to the user, and one line of help.
pub struct Setting {
    pub var: &'static str,
    pub flag: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

/// Every setting healthd reads. Order is the order of `--help` and the README table.
pub const SETTINGS: &[Setting] = &[
    Setting {
        var: "DYN_SYSTEM_PORT",
        flag: "--port",
        default: "8081",
        help: "port of the system status server; 0 = any free port, negative = server off",
    },
    Setting {
        var: "DYN_SYSTEM_HOST",
        flag: "--host",
        default: "0.0.0.0",
        help: "address to bind: an IPv4 or IPv6 literal (or localhost)",
    },
    Setting {
        var: "DYN_SYSTEM_ENABLED",
        flag: "--enabled",
        default: "true",
        help: "false turns the server off (healthd logs one line and exits 0)",
    },
    Setting {
        var: "DYN_SYSTEM_STARTING_HEALTH_STATUS",
        flag: "--starting-health-status",
        default: "notready",
        help: "status before the host process says anything: ready or notready",
    },
    Setting {
        var: "DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS",
        flag: "--use-endpoint-health-status",
        default: "[]",
        help: "endpoints that must all be ready, e.g. [generate, clear_kv_blocks]",
    },
    Setting {
        var: "DYN_SYSTEM_HEALTH_PATH",
        flag: "--health-path",
        default: "/health",
        help: "path of the health route",
    },
    Setting {
        var: "DYN_SYSTEM_LIVE_PATH",
        flag: "--live-path",
        default: "/live",
        help: "path of the liveness route",
    },
    Setting {
        var: "HEALTHD_DIALECTS",
        flag: "--dialects",
        default: "all",
        help: "route sets served besides Dynamo's: all (those that do not collide), none, or a list of kserve, dapr, k8s",
    },
    Setting {
        var: "HEALTHD_ROLE",
        flag: "--role",
        default: "worker",
        help: "worker (Dynamo's system status server) or frontend: the Dynamo frontend's /health and /live, on DYN_HTTP_PORT",
    },
    Setting {
        var: "DYN_HTTP_PORT",
        flag: "--http-port",
        default: "8000",
        help: "port of the frontend role, used instead of DYN_SYSTEM_PORT (0 = any free port, negative = server off)",
    },
    Setting {
        var: "DYN_HTTP_SVC_HEALTH_PATH",
        flag: "--http-health-path",
        default: "/health",
        help: "path of the frontend role's health route",
    },
    Setting {
        var: "DYN_HTTP_SVC_LIVE_PATH",
        flag: "--http-live-path",
        default: "/live",
        help: "path of the frontend role's liveness route",
    },
    Setting {
        var: "HEALTHD_NAMESPACE",
        flag: "--namespace",
        default: "dynamo",
        help: "namespace of the frontend role's dyn://namespace.component.endpoint names",
    },
    Setting {
        var: "HEALTHD_COMPONENT",
        flag: "--component",
        default: "backend",
        help: "component of the frontend role's dyn://namespace.component.endpoint names",
    },
    Setting {
        var: "HEALTHD_SHUTDOWN_GRACE",
        flag: "--shutdown-grace",
        default: "5s",
        help: "after SIGTERM/SIGINT, keep answering (not ready) this long, then exit 0",
    },
    Setting {
        var: "HEALTHD_HEARTBEAT_TIMEOUT",
        flag: "--heartbeat-timeout",
        default: "off",
        help: "not live unless the host shows progress this often (WATCHDOG=1 on the notify socket)",
    },
    Setting {
        var: "HEALTHD_LIVE",
        flag: "--live",
        default: "dynamo",
        help: "dynamo: the live path answers like the health path; shallow: 200 while alive",
    },
    Setting {
        var: "HEALTHD_READY_URL",
        flag: "--ready-url",
        default: "none",
        help: "poll this http://IP:PORT/PATH every second; its 200..399 sets the process ready",
    },
    Setting {
        var: "HEALTHD_NOTIFY_SOCKET",
        flag: "--notify-socket",
        default: "off (healthd run: @healthd-PID)",
        help: "sd_notify datagram socket: a path, or @name for the abstract namespace",
    },
    Setting {
        var: "HEALTHD_READY_FILE",
        flag: "--ready-file",
        default: "none",
        help: "readiness file to watch (and that healthd set edits): lines ready, notready, NAME=ready",
    },
    Setting {
        var: "HEALTHD_REGISTER",
        flag: "--register",
        default: "off",
        help: "on: this worker registers its ready endpoints in etcd (needs ETCD_ENDPOINTS); off",
    },
    Setting {
        var: "ETCD_ENDPOINTS",
        flag: "--etcd-endpoints",
        default: "none",
        help: "etcd client URLs, comma-separated http://HOST:PORT (HOST an IP or a name); turns the frontend's cluster view on",
    },
    Setting {
        var: "ETCD_LEASE_TTL",
        flag: "--etcd-lease-ttl",
        default: "10",
        help: "lease TTL in whole seconds (2..3600); also how stale the frontend's view may get",
    },
    Setting {
        var: "ETCD_AUTH_USERNAME",
        flag: "--etcd-auth-username",
        default: "none",
        help: "etcd user (with ETCD_AUTH_PASSWORD; both or neither)",
    },
    Setting {
        var: "ETCD_AUTH_PASSWORD",
        flag: "--etcd-auth-password",
        default: "none",
        help: "password of ETCD_AUTH_USERNAME",
    },
    Setting {
        var: "ETCD_AUTH_CA",
        flag: "--etcd-auth-ca",
        default: "none",
        help: "not supported: TLS to etcd (any of the three set is an error)",
    },
    Setting {
        var: "ETCD_AUTH_CLIENT_CERT",
        flag: "--etcd-auth-client-cert",
        default: "none",
        help: "not supported: TLS to etcd",
    },
    Setting {
        var: "ETCD_AUTH_CLIENT_KEY",
        flag: "--etcd-auth-client-key",
        default: "none",
        help: "not supported: TLS to etcd",
    },
];
