//! Cross-origin resource sharing for the HTTP requests of long-polling (socket.io's `cors`).

/// Which browser origins may make long-polling requests, and whether with credentials
/// (cookies). Set in [`Config::cors`](super::Config::cors); without it the server sends no
/// CORS headers and browsers only reach it from its own origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cors {
    /// The origins allowed (`https://app.example`); empty allows any.
    pub origins: Vec<String>,
    /// Whether requests may carry credentials (`Access-Control-Allow-Credentials: true`).
    pub credentials: bool,
}

impl Cors {
    /// Allows any origin, without credentials.
    pub fn any() -> Self {
        Self::default()
    }

    /// Allows the origins listed.
    pub fn origins<I, S>(origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            origins: origins.into_iter().map(Into::into).collect(),
            credentials: false,
        }
    }

    /// Allows credentials, or not.
    pub fn with_credentials(mut self, credentials: bool) -> Self {
        self.credentials = credentials;
        self
    }

    /// The headers answering a request from `origin`; `preflight` adds those of an `OPTIONS`
    /// answer, echoing the headers the browser asked for.
    pub(crate) fn headers(
        &self,
        origin: Option<&str>,
        preflight: Option<Option<&str>>,
    ) -> Vec<(String, String)> {
        let allowed = match (origin, self.origins.is_empty()) {
            // Any origin: `*`, unless credentials need the origin itself.
            (Some(origin), true) if self.credentials => Some(origin.to_owned()),
            (_, true) => Some("*".to_owned()),
            (Some(origin), false) => self
                .origins
                .iter()
                .any(|allowed| allowed == origin)
                .then(|| origin.to_owned()),
            (None, false) => None,
        };
        let Some(allowed) = allowed else {
            return Vec::new();
        };
        let mut headers = vec![("Access-Control-Allow-Origin".to_owned(), allowed.clone())];
        if allowed != "*" {
            headers.push(("Vary".to_owned(), "Origin".to_owned()));
        }
        if self.credentials {
            headers.push((
                "Access-Control-Allow-Credentials".to_owned(),
                "true".to_owned(),
            ));
        }
        if let Some(requested) = preflight {
            headers.push((
                "Access-Control-Allow-Methods".to_owned(),
                "GET,POST".to_owned(),
            ));
            if let Some(requested) = requested {
                headers.push((
                    "Access-Control-Allow-Headers".to_owned(),
                    requested.to_owned(),
                ));
            }
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin_header(headers: &[(String, String)]) -> Option<&str> {
        headers
            .iter()
            .find(|(name, _)| name == "Access-Control-Allow-Origin")
            .map(|(_, value)| value.as_str())
    }

    #[test]
    fn any_origin_with_and_without_credentials() {
        let any = Cors::any();
        assert_eq!(
            origin_header(&any.headers(Some("http://a"), None)),
            Some("*")
        );
        let credentials = Cors::any().with_credentials(true);
        let headers = credentials.headers(Some("http://a"), None);
        assert_eq!(origin_header(&headers), Some("http://a"));
        assert!(headers.contains(&("Access-Control-Allow-Credentials".into(), "true".into())));
    }

    #[test]
    fn listed_origins_only_and_preflight() {
        let cors = Cors::origins(["http://a"]);
        assert!(cors.headers(Some("http://b"), None).is_empty());
        assert!(cors.headers(None, None).is_empty());
        let headers = cors.headers(Some("http://a"), Some(Some("content-type")));
        assert_eq!(origin_header(&headers), Some("http://a"));
        assert!(headers.contains(&("Access-Control-Allow-Methods".into(), "GET,POST".into())));
        assert!(headers.contains(&("Access-Control-Allow-Headers".into(), "content-type".into())));
    }
}
