//! Lambda's DynamoDB Streams event source mapping, played by the drills through the binaries: reads
//! a table's real stream on the stand-in (`GetRecords`) and renders each record as Lambda puts it in
//! a stream event.

use std::collections::BTreeMap;

/// Lambda's event source mapping, played by the drill: reads the table's stream and invokes the
/// function with its records, in groups invoked in random order and sometimes twice.
pub struct StreamReader {
    client: aws_sdk_dynamodbstreams::Client,
    table: String,
    iterators: BTreeMap<String, Option<String>>,
    arn: Option<String>,
}

impl StreamReader {
    /// Reads `table`'s stream from its start.
    pub fn new(client: aws_sdk_dynamodbstreams::Client, table: &str) -> Self {
        Self {
            client,
            table: table.to_owned(),
            iterators: BTreeMap::new(),
            arn: None,
        }
    }

    /// The records written since the last poll, as Lambda would put them in a stream event.
    pub async fn poll(&mut self) -> Result<Vec<serde_json::Value>, String> {
        use aws_sdk_dynamodbstreams::types::ShardIteratorType;
        if self.arn.is_none() {
            let streams = self
                .client
                .list_streams()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "ListStreams: {}",
                        aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e)
                    )
                })?;
            self.arn = streams
                .streams()
                .first()
                .and_then(|s| s.stream_arn().map(str::to_owned));
        }
        let Some(arn) = self.arn.clone() else {
            return Ok(Vec::new());
        };
        let shards = self
            .client
            .describe_stream()
            .stream_arn(&arn)
            .send()
            .await
            .map_err(|e| format!("DescribeStream: {e}"))?
            .stream_description
            .map(|d| d.shards.unwrap_or_default())
            .unwrap_or_default();
        for shard in shards {
            let Some(id) = shard.shard_id else { continue };
            if !self.iterators.contains_key(&id) {
                let it = self
                    .client
                    .get_shard_iterator()
                    .stream_arn(&arn)
                    .shard_id(&id)
                    .shard_iterator_type(ShardIteratorType::TrimHorizon)
                    .send()
                    .await
                    .map_err(|e| format!("GetShardIterator: {e}"))?
                    .shard_iterator;
                self.iterators.insert(id, it);
            }
        }
        let mut records = Vec::new();
        for iterator in self.iterators.values_mut() {
            let Some(current) = iterator.clone() else {
                continue;
            };
            let out = self
                .client
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .map_err(|e| format!("GetRecords: {e}"))?;
            *iterator = out.next_shard_iterator.clone();
            for record in out.records.unwrap_or_default() {
                records.push(lambda_record(&record));
            }
        }
        Ok(records)
    }
}

/// A stream record as Lambda puts it in a stream event (the string attributes the relay reads).
fn lambda_record(record: &aws_sdk_dynamodbstreams::types::Record) -> serde_json::Value {
    use aws_sdk_dynamodbstreams::types::AttributeValue;
    let image = |map: Option<&std::collections::HashMap<String, AttributeValue>>| {
        let mut out = serde_json::Map::new();
        for (name, value) in map.into_iter().flatten() {
            if let AttributeValue::S(text) = value {
                out.insert(name.clone(), serde_json::json!({ "S": text }));
            }
        }
        serde_json::Value::Object(out)
    };
    let stream = record.dynamodb.as_ref();
    serde_json::json!({
        "eventID": record.event_id.clone().unwrap_or_default(),
        "eventName": record.event_name.as_ref().map(|n| n.as_str().to_owned()).unwrap_or_default(),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": image(stream.and_then(|s| s.keys.as_ref())),
            "NewImage": image(stream.and_then(|s| s.new_image.as_ref())),
            "SequenceNumber": stream.and_then(|s| s.sequence_number.clone()).unwrap_or_default(),
            "StreamViewType": "NEW_IMAGE",
        },
    })
}
