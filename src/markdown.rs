//! The text a `.md` post sends: its line structure read the way a Markdown reader reads it.
//! A `.txt` post goes out exactly as written and never comes here.
//!
//! - Lines of one paragraph are soft-wrapped: they join with one space (trailing and leading
//!   white space around the break dropped).
//! - One or more blank lines are a paragraph break: one empty line in the text that goes out.
//! - A line ending in a backslash or in two or more spaces keeps its line break (a hard
//!   break); the backslash and the spaces are dropped. At the end of a paragraph neither
//!   means anything: the spaces are dropped, the backslash stays.
//! - Lines that start a list item (`- `, `* `, `+ `, `1. `, `1) `), a quote (`> `) or a
//!   heading (`# `, with the space: `#BlackFriday` is a hashtag) keep their line of their own,
//!   as they would in rendered Markdown; a list item's continuation lines join onto it.
//! - Between two CJK characters a soft break is removed instead of becoming a space: Chinese
//!   and Japanese put no spaces between words, and a reader of `冬季促销：\n全场八折` expects
//!   `冬季促销：全场八折`. This is CSS Text 3's segment-break rule (§4.1.2), which browsers
//!   apply to rendered Markdown, restricted to CJK scripts: Korean (Hangul) separates words
//!   with spaces, and emoji are not words. CommonMark itself leaves this to the renderer.
//!
//! Nothing else of Markdown is interpreted: `*emphasis*`, `[links](…)`, `#hashtags`,
//! backslash escapes inside a line and HTML go out as written, because social networks show
//! them as plain text and a rendering would change what the writer typed.
//!
//! Pure: text in, text out. The length rules, the near-duplicate check and the adapters all
//! see the result (through `post::parse_as`), so what is counted is what goes out.

/// The text a `.md` body sends. `body` is the post's body as written (without front matter).
pub fn outgoing_text(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    // What ends the text written so far: nothing yet, a soft-wrapped line, a hard break,
    // or a paragraph break (one or more blank lines).
    let mut pending = Break::Start;
    let mut in_list = false;
    let lines: Vec<&str> = body
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    for (i, &line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            if pending != Break::Start {
                pending = Break::Paragraph;
            }
            in_list = false;
            continue;
        }
        let block = block_start(line, in_list || pending != Break::Soft);
        if block == Block::ListItem {
            in_list = true;
        }
        // A break needs a line after it in the same paragraph; at a paragraph's end the
        // spaces are dropped and a backslash stays text (CommonMark).
        let continues = lines.get(i + 1).is_some_and(|l| !l.trim().is_empty());
        let (content, hard) = match split_hard_break(line) {
            (_, true) if !continues => (line.trim_end(), false),
            split => split,
        };
        let content = if block == Block::Text {
            content.trim_start()
        } else {
            content
        };
        match pending {
            Break::Start => {}
            Break::Paragraph => out.push_str("\n\n"),
            Break::Hard => out.push('\n'),
            Break::Soft if block != Block::Text => out.push('\n'),
            Break::Soft => {
                let before = out.chars().next_back();
                let after = content.chars().next();
                if !(before.is_some_and(is_cjk) && after.is_some_and(is_cjk)) {
                    out.push(' ');
                }
            }
        }
        out.push_str(content);
        pending = if block == Block::Heading {
            // A heading is a line of its own: what follows starts a new line.
            Break::Hard
        } else if hard {
            Break::Hard
        } else {
            Break::Soft
        };
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Break {
    Start,
    Soft,
    Hard,
    Paragraph,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    /// Paragraph text (including a paragraph's first line).
    Text,
    ListItem,
    Quote,
    Heading,
}

/// Whether `line` starts a block that keeps its own line. An ordered item other than `1.`
/// starts one only inside a list or after a blank line (CommonMark: only a list starting at
/// 1 interrupts a paragraph), so "2026. What a year" in running text is text.
fn block_start(line: &str, list_may_continue: bool) -> Block {
    let t = line.trim_start();
    // Four spaces of indentation would be code in Markdown; in a post it is a nested item
    // or plain indentation, so only the marker matters.
    let bytes = t.as_bytes();
    let space_after = |i: usize| bytes.get(i).is_none_or(|b| *b == b' ' || *b == b'\t');
    match bytes.first() {
        Some(b'-' | b'*' | b'+') if bytes.len() > 1 && space_after(1) => return Block::ListItem,
        Some(b'>') => return Block::Quote,
        Some(b'#') => {
            let hashes = bytes.iter().take_while(|b| **b == b'#').count();
            if hashes <= 6 && bytes.len() > hashes && space_after(hashes) {
                return Block::Heading;
            }
        }
        _ => {}
    }
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if (1..=9).contains(&digits)
        && matches!(bytes.get(digits), Some(b'.' | b')'))
        && bytes.len() > digits + 1
        && space_after(digits + 1)
        && (list_may_continue || &t[..digits] == "1")
    {
        return Block::ListItem;
    }
    Block::Text
}

/// The line's content and whether it ends in a hard break (a backslash, or two or more
/// spaces). Trailing white space is dropped either way.
fn split_hard_break(line: &str) -> (&str, bool) {
    let trimmed = line.trim_end();
    let spaces = line.len() - line.trim_end_matches(' ').len();
    if spaces >= 2 && line.trim_end_matches(' ').len() == trimmed.len() {
        return (trimmed, true);
    }
    if let Some(before) = trimmed.strip_suffix('\\') {
        // An escaped backslash (`\\`) is a literal one, not a break.
        if !before.ends_with('\\') {
            return (before, true);
        }
    }
    (trimmed, false)
}

/// Chinese and Japanese characters and their punctuation: scripts that put no space between
/// words. Not Hangul (Korean uses spaces) and not emoji.
fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{2E80}'..='\u{2FDF}'     // CJK radicals, Kangxi radicals
        | '\u{3000}'..='\u{303F}'   // CJK symbols and punctuation (、。「」)
        | '\u{3040}'..='\u{30FF}'   // hiragana, katakana
        | '\u{3100}'..='\u{312F}'   // bopomofo
        | '\u{31A0}'..='\u{31FF}'   // bopomofo extended, CJK strokes, katakana extensions
        | '\u{3400}'..='\u{4DBF}'   // CJK extension A
        | '\u{4E00}'..='\u{9FFF}'   // CJK unified ideographs
        | '\u{F900}'..='\u{FAFF}'   // CJK compatibility ideographs
        | '\u{FE30}'..='\u{FE4F}'   // CJK compatibility forms
        | '\u{FF01}'..='\u{FF60}'   // fullwidth forms (，！：)
        | '\u{FF61}'..='\u{FF9F}'   // halfwidth CJK punctuation and katakana
        | '\u{20000}'..='\u{3134F}' // CJK extensions B to G
    )
}

#[cfg(test)]
mod tests {
    use super::outgoing_text as md;

    #[test]
    fn soft_wrapped_lines_join_with_one_space() {
        assert_eq!(
            md(
                "This week in the shop: how to keep suede sneakers dry through winter, three new trail\nmodels, and the dates of our December repair workshop."
            ),
            "This week in the shop: how to keep suede sneakers dry through winter, three new trail models, and the dates of our December repair workshop."
        );
        // White space around the break does not pile up.
        assert_eq!(md("one \n   two"), "one two");
    }

    #[test]
    fn blank_lines_are_one_paragraph_break() {
        assert_eq!(
            md("First\nparagraph.\n\nSecond."),
            "First paragraph.\n\nSecond."
        );
        assert_eq!(md("First.\n\n\n  \nSecond."), "First.\n\nSecond.");
    }

    #[test]
    fn a_trailing_backslash_or_two_spaces_keep_the_line_break() {
        assert_eq!(
            md("Roses are red\\\nviolets are blue"),
            "Roses are red\nviolets are blue"
        );
        assert_eq!(
            md("Roses are red  \nviolets are blue"),
            "Roses are red\nviolets are blue"
        );
        // One space is not a hard break.
        assert_eq!(md("Roses are red \nviolets"), "Roses are red violets");
        // At the end of the text a backslash is just a backslash.
        assert_eq!(md("the end\\"), "the end\\");
        // An escaped backslash is a literal backslash and the line is soft-wrapped.
        assert_eq!(md("C:\\\\\nnext"), "C:\\\\ next");
    }

    #[test]
    fn crlf_line_ends_are_line_ends() {
        assert_eq!(
            md("one\r\ntwo  \r\nthree\r\n\r\nfour"),
            "one two\nthree\n\nfour"
        );
    }

    #[test]
    fn cjk_lines_join_without_a_space_and_survive_untouched() {
        assert_eq!(
            md("冬季促销：全场运动鞋八折！\n本周六下午在瓦伦西亚门店还有免费护理讲座。"),
            "冬季促销：全场运动鞋八折！本周六下午在瓦伦西亚门店还有免费护理讲座。"
        );
        assert_eq!(md("冬のセール、\nはじまります"), "冬のセール、はじまります");
        // Between CJK and Latin, and in Korean, a soft break is a space.
        assert_eq!(md("新品\nsneakers"), "新品 sneakers");
        assert_eq!(md("겨울 세일\n시작합니다"), "겨울 세일 시작합니다");
        // Emoji are not words of a script without spaces.
        assert_eq!(md("Sale 🔥\n🔥 today"), "Sale 🔥 🔥 today");
        // A single CJK line is untouched, byte for byte.
        let line = "冬季促销：全场运动鞋八折！#冬季促销 🎉";
        assert_eq!(md(line), line);
    }

    #[test]
    fn list_items_quotes_and_headings_keep_their_lines() {
        assert_eq!(
            md("Our 3-step care guide:\n- brush\n- protect,\n  then wait\n- dry slowly"),
            "Our 3-step care guide:\n- brush\n- protect, then wait\n- dry slowly"
        );
        assert_eq!(
            md("Steps:\n1. brush\n2. protect"),
            "Steps:\n1. brush\n2. protect"
        );
        assert_eq!(
            md("> a quote\nfrom a customer"),
            "> a quote from a customer"
        );
        assert_eq!(md("# Black Friday\nis here"), "# Black Friday\nis here");
    }

    #[test]
    fn hashtags_and_numbers_in_running_text_are_text() {
        assert_eq!(
            md("Big news\n#BlackFriday #Sale"),
            "Big news #BlackFriday #Sale"
        );
        assert_eq!(
            md("What a year it was in\n2026. Thank you!"),
            "What a year it was in 2026. Thank you!"
        );
        assert_eq!(md("Prices from\n-30% today"), "Prices from -30% today");
    }

    proptest::proptest! {
        /// Only white space changes: no word, CJK character or punctuation is lost, added
        /// or reordered (backslashes aside, which the alphabet leaves out).
        #[test]
        fn only_white_space_changes(body in "[a-z冬季促销、。#*>1. \n]{0,80}") {
            let visible = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
            proptest::prop_assert_eq!(visible(&md(&body)), visible(&body));
        }

        /// A text without line breaks goes out as it is, apart from surrounding spaces.
        #[test]
        fn one_line_is_untouched(line in r"[^\n\r\\]{0,40}") {
            let out = md(line.trim());
            proptest::prop_assert_eq!(out.as_str(), line.trim());
        }
    }

    #[test]
    fn markdown_formatting_goes_out_as_written() {
        let text = "**30% off** at [our shop](https://shop.example) \\*today\\*";
        assert_eq!(md(text), text);
    }
}
