//! Connection strings as they may be printed: no user-info password and no
//! secret query parameters (`?password=`, `sslpassword=`, tokens, keys).

/// `url` with its password and secret query values replaced by `***`.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority_and_path, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match authority_and_path.find('/') {
        Some(i) => authority_and_path.split_at(i),
        None => (authority_and_path, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{user_info}@{host}"),
        },
        None => authority.to_owned(),
    };
    let mut out = format!("{scheme}://{authority}{path}");
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_secret(key) => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["pass", "secret", "token", "key"]
        .iter()
        .any(|word| key.contains(word))
}

#[cfg(test)]
mod tests {
    use super::redacted_url;

    #[test]
    fn passwords_and_secret_parameters_are_hidden() {
        for (url, shown) in [
            ("sqlite://./data/tidechat.db", "sqlite://./data/tidechat.db"),
            (
                "postgres://app:hunter2@db.internal:5432/chat",
                "postgres://app:***@db.internal:5432/chat",
            ),
            (
                "postgres://app@db/chat?password=hunter2&sslmode=require",
                "postgres://app@db/chat?password=***&sslmode=require",
            ),
            (
                "postgres://a:b@c@host/db?sslpassword=x&application_name=t",
                "postgres://a:***@host/db?sslpassword=***&application_name=t",
            ),
            ("redis://:s3cret@cache:6379", "redis://:***@cache:6379"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redacted_url(url), shown, "{url}");
        }
    }
}
