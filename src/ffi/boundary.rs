//! The one way in and out of the library: every export runs through
//! [`call`], which catches panics, turns errors into status codes plus an
//! error object, and hands results to C as library-owned JSON strings.
//! Every object it writes is a type of `json.rs`.
use super::json::{encode_error, ErrorJson};
use crate::error::{Error, ErrorCode};
use crate::progress::Phase;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Run `f`, write its JSON result (or error object) to `*out`, return the status.
///
/// The result is serialized straight to text: going through a
/// `serde_json::Value` first would build a map per object, which for a long
/// listing costs several times the engine call itself.
pub fn call<T: Serialize>(out: *mut *mut c_char, f: impl FnOnce() -> Result<T, Error>) -> i32 {
    call_text(out, || encode(&f()?))
}

/// The JSON text of `value`.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<JsonText, Error> {
    serde_json::to_vec(value)
        .map(JsonText)
        .map_err(encode_error)
}

/// Encoded JSON text. Not itself `Serialize`, so that handing it to
/// [`call`] (which would encode the bytes again, as an array of numbers)
/// does not compile.
pub struct JsonText(pub Vec<u8>);

/// [`call`] for an export that encodes its result itself: one that borrows
/// from values local to the call, or a listing encoded while it is read.
pub fn call_text(out: *mut *mut c_char, f: impl FnOnce() -> Result<JsonText, Error>) -> i32 {
    let outcome = catch_unwind(AssertUnwindSafe(f));
    let (status, body) = match outcome {
        Ok(Ok(JsonText(text))) => (0, text),
        Ok(Err(e)) => (e.code() as i32, error_text(&e)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            let e = Error::Internal(format!("panic: {what}"));
            (e.code() as i32, error_text(&e))
        }
    };
    if !out.is_null() {
        // SAFETY: the caller passes either NULL or a valid `char **`.
        unsafe { *out = into_c_string(body) };
    }
    status
}

/// Like [`call`] for functions without an out-string.
pub fn call_status(f: impl FnOnce() -> Result<(), Error>) -> i32 {
    call_text(std::ptr::null_mut(), || f().map(|()| JsonText(Vec::new())))
}

pub fn into_c_string(s: impl Into<Vec<u8>>) -> *mut c_char {
    // serde_json escapes NUL as \u0000, so JSON text never contains one;
    // should it ever, the byte is dropped rather than the message.
    let s = CString::new(s).unwrap_or_else(|e| {
        let mut v = e.into_vec();
        v.retain(|b| *b != 0);
        CString::new(v).unwrap_or_default()
    });
    s.into_raw()
}

/// The error object's text for `e`. Its fields are strings and numbers
/// (an error's path is a `String`), which always encode; the fallback is
/// there so that no failure can ever leave `*out` without an error object.
pub fn error_text(e: &Error) -> Vec<u8> {
    serde_json::to_vec(&ErrorJson::from(e)).unwrap_or_else(|bug| {
        let bug = Error::Internal(format!("encode the error object of {e:?}: {bug}"));
        serde_json::to_vec(&ErrorJson::from(&bug)).unwrap_or_default()
    })
}

/// A required C string argument as UTF-8.
pub fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(Error::InvalidArgument(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL, and the caller promises a NUL-terminated string that
    // outlives the call.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map_err(|e| Error::InvalidArgument(format!("{what} is not valid UTF-8: {e}")))
}

/// Parse a JSON arguments object. NULL means `{}` (all defaults).
pub fn json_arg<T: DeserializeOwned>(p: *const c_char) -> Result<T, Error> {
    let text = if p.is_null() {
        "{}"
    } else {
        str_arg(p, "arguments")?
    };
    serde_json::from_str(text).map_err(|e| Error::InvalidArgument(format!("arguments: {e}")))
}

/// Every code with its number, for tests and docs.
pub fn all_codes() -> impl Iterator<Item = (i32, &'static str)> {
    ErrorCode::ALL.iter().map(|c| (*c as i32, c.name()))
}

/// Every progress phase name the callback can receive, for tests and docs.
pub fn all_phases() -> impl Iterator<Item = &'static str> {
    Phase::ALL.iter().map(|p| p.name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn take(p: *mut c_char) -> Value {
        // SAFETY: `call` always stores a CString::into_raw pointer.
        let s = unsafe { CString::from_raw(p) };
        serde_json::from_str(s.to_str().unwrap()).unwrap()
    }

    #[test]
    fn a_panic_becomes_an_internal_error() {
        let mut out: *mut c_char = std::ptr::null_mut();
        let status = call(&mut out, || -> Result<Value, Error> {
            panic!("boom {}", 42)
        });
        assert_eq!(status, ErrorCode::Internal as i32);
        let v = take(out);
        assert_eq!(v["code"], "internal");
        assert!(v["message"].as_str().unwrap().contains("boom 42"), "{v}");
    }

    #[test]
    fn a_result_that_cannot_be_encoded_is_an_internal_error() {
        use std::os::unix::ffi::OsStrExt;
        // A path that is not UTF-8 has no JSON form.
        let path = std::path::Path::new(std::ffi::OsStr::from_bytes(b"/h/\xff"));
        let mut out: *mut c_char = std::ptr::null_mut();
        let status = call(&mut out, || Ok::<_, Error>(path));
        assert_eq!(status, ErrorCode::Internal as i32);
        let v = take(out);
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("encode result: path"),
            "{v}"
        );
    }

    #[test]
    fn results_are_serialized_in_declaration_order() {
        #[derive(serde::Serialize)]
        struct R {
            zeta: u8,
            alpha: u8,
        }
        let mut out: *mut c_char = std::ptr::null_mut();
        assert_eq!(call(&mut out, || Ok(R { zeta: 1, alpha: 2 })), 0);
        // SAFETY: `call` always stores a CString::into_raw pointer.
        let s = unsafe { CString::from_raw(out) };
        assert_eq!(s.to_str().unwrap(), r#"{"zeta":1,"alpha":2}"#);
    }

    #[test]
    fn errors_carry_code_message_and_details() {
        let mut out: *mut c_char = std::ptr::null_mut();
        let status = call(&mut out, || -> Result<Value, Error> {
            Err(Error::HasChildren {
                digest: "sha256:ab".into(),
                children: 2,
            })
        });
        assert_eq!(status, 6);
        let v = take(out);
        assert_eq!(v["code"], "has_children");
        assert_eq!(v["children"], 2);
        assert_eq!(v["digest"], "sha256:ab");
    }

    #[test]
    fn arguments_reject_null_bad_utf8_and_unknown_fields() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct A {
            name: String,
        }
        assert_eq!(
            str_arg(std::ptr::null(), "x").unwrap_err().code(),
            ErrorCode::InvalidArgument
        );
        let bad = b"\xff\0";
        assert!(str_arg(bad.as_ptr().cast(), "x").is_err());
        let unknown = CString::new(r#"{"name":"a","nmae":"b"}"#).unwrap();
        let e = json_arg::<A>(unknown.as_ptr()).unwrap_err();
        assert!(e.to_string().contains("nmae"), "{e}");
        assert!(
            json_arg::<A>(std::ptr::null()).is_err(),
            "missing required field"
        );
    }
}
