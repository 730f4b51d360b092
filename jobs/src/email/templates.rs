//! The message templates in `jobs/templates/`. Askama checks them against these types at compile
//! time and escapes every value in the `.html` ones; the `.txt` ones are left as written.

use askama::Template;

/// What an invitation (or reminder) says.
pub(super) struct Invitation<'a> {
    pub headline: &'a str,
    pub intro: &'a str,
    pub link: &'a str,
    pub expiry: &'a str,
    pub recipient: &'a str,
}

/// What a verification code message says.
pub(super) struct Code<'a> {
    pub company: &'a str,
    pub code: &'a str,
    pub expiry: &'a str,
}

/// A template over one of the structs above. Both parts of a message are views of the same
/// values, so the text and the HTML cannot drift apart; `Deref` lets the templates name the
/// fields directly.
macro_rules! view {
    ($name:ident, $path:literal, $vars:ident) => {
        #[derive(Template)]
        #[template(path = $path)]
        struct $name<'a>(&'a $vars<'a>);

        impl<'a> std::ops::Deref for $name<'a> {
            type Target = $vars<'a>;

            fn deref(&self) -> &Self::Target {
                self.0
            }
        }
    };
}

view!(InvitationText, "invitation.txt", Invitation);
view!(InvitationHtml, "invitation.html", Invitation);
view!(CodeText, "verification_code.txt", Code);
view!(CodeHtml, "verification_code.html", Code);

/// A message's subject and its two bodies.
pub(super) struct Letter {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Letter {
    pub fn invitation(subject: &str, vars: &Invitation<'_>) -> askama::Result<Self> {
        Self::new(subject, &InvitationText(vars), &InvitationHtml(vars))
    }

    pub fn code(subject: &str, vars: &Code<'_>) -> askama::Result<Self> {
        Self::new(subject, &CodeText(vars), &CodeHtml(vars))
    }

    fn new(subject: &str, text: &impl Template, html: &impl Template) -> askama::Result<Self> {
        // A display name is tenant input: a line break in it must not reach the header.
        let subject = subject
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        Ok(Self {
            subject,
            text: text.render()?,
            html: html.render()?,
        })
    }
}
