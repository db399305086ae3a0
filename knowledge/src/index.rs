//! The tantivy index over the knowledge base's questions and answers.
//!
//! Every question (canonical and paraphrase) is one document; every answer (both locales) is
//! another, searched with a lower weight, so a customer who uses the answer's words ("CDK",
//! "激活码") still finds the entry. The index lives in RAM: it is rebuilt from the FAQ files
//! whenever they load, which for 15,000 questions takes well under a second.

use crate::text::{Analyzer, MixedTokenizer, TOKENIZER_NAME};
use tantivy::collector::TopDocs;
use tantivy::columnar::Column;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, STORED,
};
use tantivy::{doc, Index, ReloadPolicy, Searcher, TantivyDocument, Term};

/// How much an answer's words count compared to a question's.
const ANSWER_BOOST: f32 = 0.3;

/// At most this many terms of a message are searched (the rarest ones).
const MAX_QUERY_TERMS: usize = 16;

/// The value of the `question` column on answer documents.
const NO_QUESTION: u64 = u64::MAX;

/// A document to index: a question or an answer of one entry.
#[derive(Debug, Clone, Copy)]
pub struct IndexDoc<'a> {
    /// The entry's position in the knowledge base.
    pub entry: usize,
    /// The question's position in the knowledge base's question list; `None` for an answer.
    pub question: Option<usize>,
    /// The text.
    pub text: &'a str,
}

/// One search hit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The entry's position in the knowledge base.
    pub entry: usize,
    /// The question that matched; `None` when the entry's answer matched.
    pub question: Option<usize>,
    /// The BM25 score (answer hits already weighted down).
    pub score: f32,
}

/// A read-only BM25 index of questions and answers.
pub struct QuestionIndex {
    searcher: Searcher,
    question_field: Field,
    answer_field: Field,
    /// Per segment: the entry and question columns.
    columns: Vec<(Column<u64>, Column<u64>)>,
    analyzer: Analyzer,
}

impl std::fmt::Debug for QuestionIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuestionIndex")
            .field("docs", &self.searcher.num_docs())
            .finish_non_exhaustive()
    }
}

impl QuestionIndex {
    /// Indexes `docs` in RAM.
    pub fn build<'a>(
        analyzer: &Analyzer,
        docs: impl IntoIterator<Item = IndexDoc<'a>>,
    ) -> tantivy::Result<Self> {
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER_NAME)
            .set_index_option(IndexRecordOption::WithFreqs);
        let text = TextOptions::default().set_indexing_options(indexing);
        let mut schema = Schema::builder();
        let question_field = schema.add_text_field("question", text.clone());
        let answer_field = schema.add_text_field("answer", text);
        let entry_field = schema.add_u64_field("entry", FAST | STORED);
        let qidx_field = schema.add_u64_field("qidx", FAST);
        let index = Index::create_in_ram(schema.build());
        index
            .tokenizers()
            .register(TOKENIZER_NAME, MixedTokenizer::new(analyzer.clone()));

        let mut writer = index.writer_with_num_threads(1, 50_000_000)?;
        for d in docs {
            let mut document = TantivyDocument::default();
            match d.question {
                Some(q) => {
                    document.add_text(question_field, d.text);
                    document.add_u64(qidx_field, q as u64);
                }
                None => {
                    document.add_text(answer_field, d.text);
                    document.add_u64(qidx_field, NO_QUESTION);
                }
            }
            document.add_u64(entry_field, d.entry as u64);
            writer.add_document(document)?;
        }
        // An empty index still needs one segment's worth of schema; a sentinel keeps the code
        // paths the same and never matches (it has no text).
        writer.add_document(doc!(entry_field => u64::MAX, qidx_field => NO_QUESTION))?;
        writer.commit()?;
        let reader: tantivy::IndexReader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let searcher = reader.searcher();
        let mut columns = Vec::new();
        for segment in searcher.segment_readers() {
            let fast = segment.fast_fields();
            columns.push((fast.u64("entry")?, fast.u64("qidx")?));
        }
        Ok(QuestionIndex {
            searcher,
            question_field,
            answer_field,
            columns,
            analyzer: analyzer.clone(),
        })
    }

    /// Number of indexed documents (questions and answers).
    pub fn len(&self) -> u64 {
        self.searcher.num_docs().saturating_sub(1)
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The best `limit` hits for `query`, best first.
    pub fn search(&self, query: &str, limit: usize) -> Vec<Hit> {
        self.search_prepared(&self.analyzer.prepare(query), limit)
    }

    /// [`QuestionIndex::search`] for a query already [prepared](Analyzer::prepare).
    pub fn search_prepared(&self, query: &str, limit: usize) -> Vec<Hit> {
        let mut terms: Vec<String> = self
            .analyzer
            .words(query)
            .into_iter()
            .map(|w| w.term)
            .collect();
        terms.sort();
        terms.dedup();
        if terms.is_empty() || limit == 0 {
            return Vec::new();
        }
        // Terms in more than a tenth of the documents weigh next to nothing in BM25 but have
        // the longest posting lists, and a long message's rarest terms carry nearly all of its
        // score: the query keeps the `MAX_QUERY_TERMS` rarest terms that are not that common
        // (and the rarest one in any case, so a query of common words still finds something).
        let common = (self.searcher.num_docs() / 10).max(50);
        let mut by_rarity: Vec<(u64, &String)> = terms
            .iter()
            .map(|t| {
                let term = Term::from_field_text(self.question_field, t);
                (self.searcher.doc_freq(&term).unwrap_or(0), t)
            })
            .collect();
        by_rarity.sort();
        let kept: Vec<&String> = by_rarity
            .iter()
            .enumerate()
            .filter(|(i, (df, _))| *i == 0 || *df <= common)
            .take(MAX_QUERY_TERMS)
            .map(|(_, (_, t))| *t)
            .collect();
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(kept.len() * 2);
        for t in kept {
            let q = Term::from_field_text(self.question_field, t);
            clauses.push((
                Occur::Should,
                Box::new(TermQuery::new(q, IndexRecordOption::WithFreqs)),
            ));
            let a = Term::from_field_text(self.answer_field, t);
            let answer_query = TermQuery::new(a, IndexRecordOption::WithFreqs);
            clauses.push((
                Occur::Should,
                Box::new(BoostQuery::new(Box::new(answer_query), ANSWER_BOOST)),
            ));
        }
        let query = BooleanQuery::new(clauses);
        let top = match self
            .searcher
            .search(&query, &TopDocs::with_limit(limit).order_by_score())
        {
            Ok(top) => top,
            Err(e) => {
                tracing::warn!(error = %e, "index search failed");
                return Vec::new();
            }
        };
        top.into_iter()
            .filter_map(|(score, address)| {
                let (entries, questions) = self.columns.get(address.segment_ord as usize)?;
                let entry = entries.first(address.doc_id)?;
                let question = questions.first(address.doc_id)?;
                Some(Hit {
                    entry: usize::try_from(entry).ok()?,
                    question: (question != NO_QUESTION).then_some(question as usize),
                    score,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> QuestionIndex {
        let docs = [
            (0, Some(0), "我的卡密在哪里"),
            (0, Some(1), "where is my card key"),
            (1, Some(2), "怎么退款"),
            (1, Some(3), "how do I get a refund"),
            (
                1,
                None,
                "退款会在 7 天内原路退回 refunds go back to the original payment method",
            ),
        ];
        QuestionIndex::build(
            &Analyzer::shared(),
            docs.iter().map(|&(entry, question, text)| IndexDoc {
                entry,
                question,
                text,
            }),
        )
        .unwrap()
    }

    #[test]
    fn finds_questions_in_both_languages() {
        let idx = index();
        assert_eq!(idx.len(), 5);
        let hits = idx.search("卡密在哪", 3);
        assert_eq!(hits[0].entry, 0);
        assert_eq!(hits[0].question, Some(0));
        let hits = idx.search("Refunding?", 3);
        assert_eq!(hits[0].entry, 1);
    }

    #[test]
    fn answer_words_find_the_entry_with_less_weight() {
        let idx = index();
        let hits = idx.search("original payment method", 3);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].entry, 1);
        assert_eq!(hits[0].question, None);
    }

    #[test]
    fn unrelated_or_empty_queries_find_nothing() {
        let idx = index();
        assert!(idx.search("weather tomorrow", 3).is_empty());
        assert!(idx.search("?!", 3).is_empty());
        assert!(idx.search("", 3).is_empty());
    }

    #[test]
    fn common_words_are_dropped_but_never_all_of_them() {
        // "card" is in every document, "refund" in one.
        let texts: Vec<String> = (0..80)
            .map(|i| {
                if i == 7 {
                    "card refund".to_string()
                } else {
                    format!("card item{i}")
                }
            })
            .collect();
        let idx = QuestionIndex::build(
            &Analyzer::shared(),
            texts.iter().enumerate().map(|(i, text)| IndexDoc {
                entry: i,
                question: Some(i),
                text,
            }),
        )
        .unwrap();
        assert!(!idx.search("card", 5).is_empty(), "the rarest term is kept");
        let long = format!(
            "{} refund {}",
            "card ".repeat(20),
            "please help me now ".repeat(5)
        );
        assert_eq!(idx.search(&long, 5)[0].entry, 7);
    }
}
