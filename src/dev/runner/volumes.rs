//! A pod's volumes as directories under `<pod dir>/volumes/<name>`: emptyDir (empty),
//! Secret and ConfigMap (one file per key or per `items` entry), projected (Secrets,
//! ConfigMaps, the ServiceAccount token, downward API fields), hostPath (the host path
//! itself). A PersistentVolumeClaim becomes a directory that lives as long as the pod
//! (documented). Secret, ConfigMap and projected volumes are rewritten when their
//! objects change, as kubelet does, by writing a temporary file and renaming it, so a
//! reader never sees half a file.

use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
};

use k8s_openapi::api::core::v1::{KeyToPath, PodSpec, Volume};

use super::spec::{Objects, PodFacts, field};

/// Volume name → its directory, for every volume of `spec`.
pub fn directories(pod_dir: &Path, spec: &PodSpec) -> BTreeMap<String, PathBuf> {
    spec.volumes
        .iter()
        .flatten()
        .map(|v| {
            let dir = match &v.host_path {
                Some(h) => PathBuf::from(&h.path),
                None => pod_dir.join("volumes").join(&v.name),
            };
            (v.name.clone(), dir)
        })
        .collect()
}

/// Names of the volumes that carry a ServiceAccount token.
pub fn token_volumes(spec: &PodSpec) -> Vec<String> {
    spec.volumes
        .iter()
        .flatten()
        .filter(|v| {
            v.projected.as_ref().is_some_and(|p| {
                p.sources
                    .iter()
                    .flatten()
                    .any(|s| s.service_account_token.is_some())
            })
        })
        .map(|v| v.name.clone())
        .collect()
}

/// Writes every volume's content (creating directories). Err names the first missing
/// Secret or ConfigMap that is not optional: the pod waits for it.
pub fn write_all(
    spec: &PodSpec,
    dirs: &BTreeMap<String, PathBuf>,
    pod: &PodFacts<'_>,
    objects: &dyn Objects,
    token: &str,
) -> Result<(), String> {
    for v in spec.volumes.iter().flatten() {
        let dir = &dirs[&v.name];
        std::fs::create_dir_all(dir).map_err(|e| format!("volume {}: {e}", v.name))?;
        let files = contents(v, pod, objects, token)?;
        for (rel, bytes) in files {
            write_if_changed(&dir.join(rel), &bytes)
                .map_err(|e| format!("volume {}: {e}", v.name))?;
        }
    }
    Ok(())
}

/// The files of one volume (relative path → content); empty for directories.
fn contents(
    v: &Volume,
    pod: &PodFacts<'_>,
    objects: &dyn Objects,
    token: &str,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut files = Vec::new();
    if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        keyed(
            &mut files,
            "Secret",
            &name,
            objects.secret(&name),
            s.items.as_deref(),
            s.optional,
        )?;
    } else if let Some(c) = &v.config_map {
        keyed(
            &mut files,
            "ConfigMap",
            &c.name,
            objects.config_map(&c.name),
            c.items.as_deref(),
            c.optional,
        )?;
    } else if let Some(p) = &v.projected {
        for source in p.sources.iter().flatten() {
            if let Some(s) = &source.secret {
                keyed(
                    &mut files,
                    "Secret",
                    &s.name,
                    objects.secret(&s.name),
                    s.items.as_deref(),
                    s.optional,
                )?;
            }
            if let Some(c) = &source.config_map {
                // kube-root-ca.crt exists in every real namespace; the embedded API server
                // speaks plain HTTP and has no CA to give.
                let optional = c.optional.or(Some(c.name == "kube-root-ca.crt"));
                keyed(
                    &mut files,
                    "ConfigMap",
                    &c.name,
                    objects.config_map(&c.name),
                    c.items.as_deref(),
                    optional,
                )?;
            }
            if let Some(t) = &source.service_account_token {
                files.push((t.path.clone(), token.as_bytes().to_vec()));
            }
            if let Some(d) = &source.downward_api {
                for item in d.items.iter().flatten() {
                    if let Some(f) = &item.field_ref {
                        let value = field(pod, &f.field_path).unwrap_or_default();
                        files.push((item.path.clone(), value.into_bytes()));
                    }
                }
            }
        }
    } else if v.downward_api.is_some() {
        for item in v.downward_api.iter().flat_map(|d| d.items.iter().flatten()) {
            if let Some(f) = &item.field_ref {
                files.push((
                    item.path.clone(),
                    field(pod, &f.field_path).unwrap_or_default().into_bytes(),
                ));
            }
        }
    }
    Ok(files)
}

fn keyed(
    files: &mut Vec<(String, Vec<u8>)>,
    kind: &str,
    name: &str,
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&[KeyToPath]>,
    optional: Option<bool>,
) -> Result<(), String> {
    let Some(data) = data else {
        return if optional == Some(true) {
            Ok(())
        } else {
            Err(format!("{kind} {name} not found"))
        };
    };
    match items {
        Some(items) => {
            for item in items {
                match data.get(&item.key) {
                    Some(v) => files.push((item.path.clone(), v.clone())),
                    None if optional == Some(true) => {}
                    None => return Err(format!("{kind} {name} has no key {}", item.key)),
                }
            }
        }
        None => files.extend(data),
    }
    Ok(())
}

/// Writes `bytes` to `path` (temporary file + rename) unless it already holds them.
fn write_if_changed(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&temp, bytes)?;
    std::fs::rename(&temp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapProjection, EmptyDirVolumeSource, ProjectedVolumeSource, SecretVolumeSource,
        ServiceAccountTokenProjection, VolumeProjection,
    };
    use std::net::Ipv4Addr;

    struct One(BTreeMap<String, Vec<u8>>);

    impl Objects for One {
        fn secret(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
            (name == "gw").then(|| self.0.clone())
        }
        fn config_map(&self, _: &str) -> Option<BTreeMap<String, Vec<u8>>> {
            None
        }
    }

    #[test]
    fn secrets_tokens_and_scratch_space_become_files() {
        let root = tempfile::tempdir().unwrap();
        let spec = PodSpec {
            volumes: Some(vec![
                Volume {
                    name: "tmp".into(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Volume::default()
                },
                Volume {
                    name: "cfg".into(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some("gw".into()),
                        ..SecretVolumeSource::default()
                    }),
                    ..Volume::default()
                },
                Volume {
                    name: "api".into(),
                    projected: Some(ProjectedVolumeSource {
                        sources: Some(vec![
                            VolumeProjection {
                                service_account_token: Some(ServiceAccountTokenProjection {
                                    path: "token".into(),
                                    ..ServiceAccountTokenProjection::default()
                                }),
                                ..VolumeProjection::default()
                            },
                            VolumeProjection {
                                config_map: Some(ConfigMapProjection {
                                    name: "kube-root-ca.crt".into(),
                                    ..ConfigMapProjection::default()
                                }),
                                ..VolumeProjection::default()
                            },
                        ]),
                        ..ProjectedVolumeSource::default()
                    }),
                    ..Volume::default()
                },
            ]),
            ..PodSpec::default()
        };
        let dirs = directories(root.path(), &spec);
        let labels = BTreeMap::new();
        let pod = PodFacts {
            namespace: "ns",
            pod_name: "p",
            pod_uid: "u",
            pod_ip: Ipv4Addr::new(127, 0, 1, 1),
            service_account: "sa",
            labels: &labels,
            volumes: &dirs,
            operator_image: "op",
            operator_binary: Path::new("/bin/true"),
        };
        let objects = One(BTreeMap::from([("config.json".to_owned(), b"{}".to_vec())]));
        write_all(&spec, &dirs, &pod, &objects, "tok").unwrap();
        assert!(dirs["tmp"].is_dir());
        assert_eq!(
            std::fs::read(dirs["cfg"].join("config.json")).unwrap(),
            b"{}"
        );
        assert_eq!(std::fs::read(dirs["api"].join("token")).unwrap(), b"tok");
        assert_eq!(token_volumes(&spec), ["api"]);
        let changed = One(BTreeMap::from([(
            "config.json".to_owned(),
            b"{\"a\":1}".to_vec(),
        )]));
        write_all(&spec, &dirs, &pod, &changed, "tok").unwrap();
        assert_eq!(
            std::fs::read(dirs["cfg"].join("config.json")).unwrap(),
            b"{\"a\":1}"
        );
        struct None_;
        impl Objects for None_ {
            fn secret(&self, _: &str) -> Option<BTreeMap<String, Vec<u8>>> {
                None
            }
            fn config_map(&self, _: &str) -> Option<BTreeMap<String, Vec<u8>>> {
                None
            }
        }
        assert_eq!(
            write_all(&spec, &dirs, &pod, &None_, "tok").unwrap_err(),
            "Secret gw not found"
        );
    }
}
