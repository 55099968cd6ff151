//! EM's reference representation of a job, as `GET /api/jobs/{id}` answers it: an
//! `EntityRef` of `Type="JobReference"` whose `Name` and `UID` are attributes (XML) or keys
//! (JSON). Shared by the client (which reads the name for the protected-name globs) and the
//! simulator (which answers it); knows nothing of HTTP.

use super::json::JsonJobRef;
use super::xml::parse_xml;
use super::{CodecError, Format, VEEAM_NS};
use quick_xml::escape::escape;

/// A job's reference: what a protected-name check needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobRef {
    /// The job's name, as the operator sees it in the console (never empty once decoded).
    pub name: String,
    /// `urn:veeam:Job:<guid>`.
    pub uid: String,
    /// The job's URL.
    pub href: String,
}

/// Decodes the answer to `GET /api/jobs/{id}`: the `EntityRef` (or, with `?format=Entity`,
/// the full `Job`; both carry `Name`). A body without a non-empty `Name` is undecodable, so
/// a name check never passes on a name it did not read.
pub fn decode_job_ref(format: Format, body: &str) -> Result<JobRef, CodecError> {
    let job = match format {
        Format::Json => {
            let j: JsonJobRef =
                serde_json::from_str(body).map_err(|e| CodecError::new("JobReference", e))?;
            JobRef {
                name: j.name,
                uid: j.uid,
                href: j.href,
            }
        }
        Format::Xml => {
            let root = parse_xml(body, "JobReference")?;
            if !matches!(root.name.as_str(), "EntityRef" | "Job") {
                let reason = format!("root element is <{}>", root.name);
                return Err(CodecError::new("JobReference", reason));
            }
            let attr = |name: &str| root.attr(name).unwrap_or_default().to_string();
            JobRef {
                name: attr("Name"),
                uid: attr("UID"),
                href: attr("Href"),
            }
        }
    };
    if job.name.trim().is_empty() {
        return Err(CodecError::new("JobReference", "missing Name"));
    }
    Ok(job)
}

/// Encodes a job's reference as EM answers `GET /api/jobs/{id}`.
pub fn encode_job_ref(format: Format, job: &JobRef) -> String {
    match format {
        Format::Json => serde_json::to_string(&JsonJobRef {
            name: job.name.clone(),
            uid: job.uid.clone(),
            href: job.href.clone(),
            links: Vec::new(),
            kind: Some("JobReference".into()),
        })
        .expect("a JobReference always serialises"),
        Format::Xml => format!(
            "<EntityRef xmlns=\"{VEEAM_NS}\" Type=\"JobReference\" Href=\"{}\" Name=\"{}\" \
             UID=\"{}\"><Links /></EntityRef>",
            escape(job.href.as_str()),
            escape(job.name.as_str()),
            escape(job.uid.as_str()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC_XML: &str = r#"<EntityRef xmlns="http://www.veeam.com/ent/v1.0" Type="JobReference" Href="https://em:9398/api/jobs/5b89dae5-6f08-45ec-b068-08f0bd08394a" Name="CRM Backup" UID="urn:veeam:Job:5b89dae5-6f08-45ec-b068-08f0bd08394a"><Links><Link Rel="Alternate" Type="Job" Href="https://em:9398/api/jobs/5b89dae5-6f08-45ec-b068-08f0bd08394a?format=Entity" /></Links></EntityRef>"#;

    #[test]
    fn the_documented_reference_decodes_in_both_formats() {
        let xml = decode_job_ref(Format::Xml, DOC_XML).unwrap();
        assert_eq!(xml.name, "CRM Backup");
        assert_eq!(
            xml.uid,
            "urn:veeam:Job:5b89dae5-6f08-45ec-b068-08f0bd08394a"
        );
        let json = r#"{"Type":"JobReference","Href":"h","Name":"CRM Backup","UID":"urn:veeam:Job:x","Links":[{"Rel":"Alternate","Href":"h","Type":"Job"}]}"#;
        assert_eq!(
            decode_job_ref(Format::Json, json).unwrap().name,
            "CRM Backup"
        );
    }

    #[test]
    fn names_with_markup_round_trip() {
        let job = JobRef {
            name: "prod <&> \"CRM\" 'A'".into(),
            uid: "urn:veeam:Job:x".into(),
            href: "https://em/api/jobs/x?a=1&b=2".into(),
        };
        for format in [Format::Xml, Format::Json] {
            assert_eq!(
                decode_job_ref(format, &encode_job_ref(format, &job)).unwrap(),
                job
            );
        }
    }

    #[test]
    fn a_body_without_a_name_or_of_another_entity_is_undecodable() {
        let cases = [
            (
                Format::Xml,
                r#"<EntityRef xmlns="http://www.veeam.com/ent/v1.0" Type="JobReference" Name=" "/>"#,
            ),
            (
                Format::Xml,
                r#"<Task xmlns="http://www.veeam.com/ent/v1.0" Name="x"/>"#,
            ),
            (Format::Xml, "<html><body>proxy</body></html>"),
            (
                Format::Json,
                r#"{"Type":"JobReference","UID":"urn:veeam:Job:x"}"#,
            ),
            (Format::Json, r#"{"Name":""}"#),
            (Format::Json, "not json"),
        ];
        for (format, body) in cases {
            assert!(decode_job_ref(format, body).is_err(), "{body}");
        }
    }
}
