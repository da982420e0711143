//! The TOML file as written: serde structs that reject unknown keys and
//! keep every value's byte span, so validation can point at it. Nothing
//! here is checked beyond TOML types; `build` turns it into the model.

use super::units::{NumOrStr, StrOrInts};
use serde::Deserialize;
use toml::Spanned;

type S<T> = Spanned<T>;
type OS<T> = Option<Spanned<T>>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub settings: Option<S<RawSettings>>,
    #[serde(default)]
    pub pools: Vec<S<RawPool>>,
    #[serde(default)]
    pub connections: Vec<S<RawConnection>>,
    #[serde(default)]
    pub static_sas: Vec<S<RawStaticSa>>,
    #[serde(default)]
    pub rules: Vec<S<RawRule>>,
    #[serde(default)]
    pub interface: Option<S<RawInterface>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInterface {
    pub name: OS<String>,
    #[serde(default)]
    pub addresses: Vec<S<String>>,
    pub mtu: OS<i64>,
    pub path_mtu: OS<i64>,
    pub routes: Option<S<Vec<S<String>>>>,
    pub workers: OS<i64>,
    pub cpus: OS<StrOrInts>,
    pub io: OS<String>,
    pub offloads: OS<bool>,
    pub metrics: OS<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSettings {
    pub allow_weak: OS<bool>,
    pub allow_inline_secrets: OS<bool>,
    pub default_action: OS<String>,
    pub backend: OS<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPool {
    pub name: S<String>,
    pub addrs: S<Vec<S<String>>>,
    #[serde(default)]
    pub dns: Vec<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGateway {
    pub name: OS<String>,
    pub address: S<String>,
    pub port: OS<i64>,
    pub weight: OS<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    pub auth: S<String>,
    pub id: OS<String>,
    pub psk: OS<String>,
    pub psk_file: OS<String>,
    pub psk_env: OS<String>,
    pub cert: OS<String>,
    pub key: OS<String>,
    pub ca_dir: OS<String>,
    pub cacert: OS<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConnection {
    pub name: S<String>,
    #[serde(default)]
    pub local_addrs: Vec<S<String>>,
    #[serde(default)]
    pub local_port: OS<i64>,
    #[serde(default)]
    pub gateways: Vec<S<RawGateway>>,
    pub hash: OS<String>,
    #[serde(default)]
    pub proposals: Vec<S<String>>,
    pub rekey_time: OS<NumOrStr>,
    pub rand_time: OS<NumOrStr>,
    pub dpd_delay: OS<NumOrStr>,
    pub dpd_timeout: OS<NumOrStr>,
    pub keepalive: OS<NumOrStr>,
    #[serde(default)]
    pub vips: Vec<S<String>>,
    #[serde(default)]
    pub pools: Vec<S<String>>,
    pub mtu: OS<i64>,
    pub local: S<RawAuth>,
    pub remote: S<RawAuth>,
    #[serde(default)]
    pub children: Vec<S<RawChild>>,
    #[serde(default)]
    pub groups: Vec<S<RawGroup>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChild {
    pub name: S<String>,
    #[serde(default)]
    pub local_ts: Vec<S<String>>,
    #[serde(default)]
    pub remote_ts: Vec<S<String>>,
    #[serde(default)]
    pub esp_proposals: Vec<S<String>>,
    pub rekey_time: OS<NumOrStr>,
    pub life_time: OS<NumOrStr>,
    pub rand_time: OS<NumOrStr>,
    pub rekey_bytes: OS<NumOrStr>,
    pub life_bytes: OS<NumOrStr>,
    pub rekey_packets: OS<NumOrStr>,
    pub life_packets: OS<NumOrStr>,
    pub start_action: OS<String>,
    pub close_action: OS<String>,
    pub dpd_action: OS<String>,
    pub replay_window: OS<i64>,
    pub dscp: OS<NumOrStr>,
    pub mtu: OS<i64>,
    pub gateway: OS<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGroup {
    pub name: S<String>,
    #[serde(rename = "match")]
    pub patterns: S<Vec<S<String>>>,
    pub children: S<Vec<S<String>>>,
    #[serde(default)]
    pub local_ts: Vec<S<String>>,
    pub pool: OS<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStaticSa {
    pub name: S<String>,
    pub direction: S<String>,
    pub spi: S<NumOrStr>,
    pub alg: S<String>,
    pub key: OS<String>,
    pub key_file: OS<String>,
    pub esn: OS<bool>,
    pub local: S<String>,
    pub remote: S<String>,
    pub encap: OS<bool>,
    pub local_port: OS<i64>,
    pub remote_port: OS<i64>,
    #[serde(default)]
    pub local_ts: Vec<S<String>>,
    #[serde(default)]
    pub remote_ts: Vec<S<String>>,
    pub replay_window: OS<i64>,
    pub dscp: OS<NumOrStr>,
    pub child: OS<String>,
    pub gateway: OS<String>,
    pub keepalive: OS<NumOrStr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub name: OS<String>,
    pub action: S<String>,
    pub child: OS<String>,
    #[serde(default)]
    pub src: Vec<S<String>>,
    #[serde(default)]
    pub dst: Vec<S<String>>,
    pub proto: OS<NumOrStr>,
    pub src_port: OS<NumOrStr>,
    pub dst_port: OS<NumOrStr>,
    pub dscp: OS<DscpList>,
}

/// `dscp = 46` or `dscp = [46, 34]`.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum DscpList {
    One(i64),
    Many(Vec<i64>),
}
