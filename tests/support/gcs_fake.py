"""An in-memory fake of the Google Cloud Storage XML API, for alto's tests.

It serves what object_store's GCS client sends, as we read the API: objects
(`PUT/GET/HEAD/DELETE /{bucket}/{object}`, ranges, `x-goog-copy-source`),
conditional writes (`x-goog-if-generation-match`, `0` = must not exist),
`If-Match`/`If-None-Match` on reads, listing (`GET /{bucket}?list-type=2`
with `prefix`, `delimiter`, `continuation-token`, `start-after`,
`max-keys`), S3-style multipart uploads, and bucket creation (`PUT
/{bucket}`). Bucket and object names arrive percent-encoded (every
non-alphanumeric byte, `/` included). Authorization is not checked.

It proves alto against our reading of the API, not against Google.

Usage: python3 gcs_fake.py [PORT]   (default 0: any free port)
Prints `listening on 127.0.0.1:<port>` once it accepts connections, and
exits when its standard input closes, so it never outlives the test that
started it.
"""
import email.utils
import hashlib
import http.server
import itertools
import os
import sys
import threading
import time
import urllib.parse
from xml.sax.saxutils import escape

LOCK = threading.Lock()
BUCKETS = {}  # name -> {object name -> Object}
UPLOADS = {}  # upload id -> (bucket, name, {part number: bytes})
GENERATIONS = itertools.count(int(time.time() * 1_000_000))
UPLOAD_IDS = itertools.count(1)


class Object:
    def __init__(self, data, content_type):
        self.data = data
        self.generation = next(GENERATIONS)
        self.etag = '"%s"' % hashlib.md5(data).hexdigest()
        self.modified = time.time()
        self.content_type = content_type or "application/octet-stream"


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    # -- plumbing -----------------------------------------------------------

    def target(self):
        """(bucket, object or None, query dict) of the request, decoded."""
        raw_path, _, raw_query = self.path.partition("?")
        parts = raw_path.lstrip("/").split("/", 1)
        bucket = urllib.parse.unquote(parts[0])
        name = urllib.parse.unquote(parts[1]) if len(parts) > 1 and parts[1] else None
        query = dict(urllib.parse.parse_qsl(raw_query, keep_blank_values=True))
        return bucket, name, query

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reply(self, status, body=b"", headers=None, head=False):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and not head:
            self.wfile.write(body)

    def error(self, status, code, message):
        body = (
            "<?xml version='1.0' encoding='UTF-8'?><Error><Code>%s</Code><Message>%s</Message></Error>"
            % (code, escape(message))
        ).encode()
        self.reply(status, body, {"Content-Type": "application/xml"})

    def xml(self, text, headers=None):
        h = {"Content-Type": "application/xml"}
        h.update(headers or {})
        self.reply(200, ('<?xml version="1.0" encoding="UTF-8"?>' + text).encode(), h)

    def object_headers(self, obj):
        return {
            "ETag": obj.etag,
            "Last-Modified": email.utils.formatdate(obj.modified, usegmt=True),
            "x-goog-generation": str(obj.generation),
            "x-goog-metageneration": "1",
            "Content-Type": obj.content_type,
            "Accept-Ranges": "bytes",
        }

    def bucket(self, name):
        b = BUCKETS.get(name)
        if b is None:
            self.error(404, "NoSuchBucket", "The specified bucket does not exist.")
        return b

    # -- verbs --------------------------------------------------------------

    def do_PUT(self):
        bucket, name, query = self.target()
        data = self.body()
        with LOCK:
            if name is None:
                BUCKETS.setdefault(bucket, {})
                return self.reply(200)
            objects = self.bucket(bucket)
            if objects is None:
                return
            if "uploadId" in query:
                upload = UPLOADS.get(query["uploadId"])
                if upload is None:
                    return self.error(404, "NoSuchUpload", "The upload does not exist.")
                upload[2][int(query["partNumber"])] = data
                etag = '"%s"' % hashlib.md5(data).hexdigest()
                return self.reply(200, headers={"ETag": etag})
            source = self.headers.get("x-goog-copy-source")
            if source is not None:
                src_bucket, _, src_name = source.lstrip("/").partition("/")
                src = BUCKETS.get(urllib.parse.unquote(src_bucket), {}).get(
                    urllib.parse.unquote(src_name)
                )
                if src is None:
                    return self.error(404, "NoSuchKey", "The copy source does not exist.")
                data = src.data
            if not self.precondition(objects.get(name)):
                return
            obj = Object(data, self.headers.get("Content-Type"))
            objects[name] = obj
            self.reply(200, headers=self.object_headers(obj))

    def precondition(self, current):
        """Whether `x-goog-if-generation-match` allows this write."""
        want = self.headers.get("x-goog-if-generation-match")
        if want is None:
            return True
        have = current.generation if current is not None else 0
        if str(have) != want.strip():
            self.error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold.")
            return False
        return True

    def do_GET(self):
        self.read(head=False)

    def do_HEAD(self):
        self.read(head=True)

    def read(self, head):
        bucket, name, query = self.target()
        with LOCK:
            objects = self.bucket(bucket)
            if objects is None:
                return
            if name is None:
                return self.list(bucket, objects, query)
            obj = objects.get(name)
            if obj is None or ("generation" in query and query["generation"] != str(obj.generation)):
                return self.error(404, "NoSuchKey", "The specified key does not exist.")
            if_match = self.headers.get("If-Match")
            if if_match is not None and if_match not in ("*", obj.etag):
                return self.error(412, "PreconditionFailed", "If-Match did not hold.")
            if_none = self.headers.get("If-None-Match")
            if if_none is not None and if_none in ("*", obj.etag):
                return self.reply(304, headers=self.object_headers(obj))
            headers = self.object_headers(obj)
            data = obj.data
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes="):
                start_s, _, end_s = rng[len("bytes="):].partition("-")
                size = len(data)
                if start_s == "":
                    start, end = max(size - int(end_s), 0), size - 1
                else:
                    start = int(start_s)
                    end = min(int(end_s), size - 1) if end_s else size - 1
                if start >= size or start > end:
                    return self.error(416, "InvalidRange", "The requested range cannot be satisfied.")
                headers["Content-Range"] = "bytes %d-%d/%d" % (start, end, size)
                self.send_response(206)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(end - start + 1))
                self.end_headers()
                if not head:
                    self.wfile.write(data[start:end + 1])
                return
            self.reply(200, data, headers, head=head)

    def list(self, bucket, objects, query):
        prefix = query.get("prefix", "")
        delimiter = query.get("delimiter", "")
        after = query.get("continuation-token") or query.get("start-after") or ""
        max_keys = int(query.get("max-keys") or 1000)
        entries = []  # (sort key, xml)
        seen_prefixes = set()
        for key in sorted(objects):
            if not key.startswith(prefix) or key <= after:
                continue
            rest = key[len(prefix):]
            if delimiter and delimiter in rest:
                common = prefix + rest.split(delimiter, 1)[0] + delimiter
                if common in seen_prefixes or common <= after:
                    continue
                seen_prefixes.add(common)
                # The largest key under the prefix, so the next page skips it whole.
                last = max(k for k in objects if k.startswith(common))
                entries.append((last, "<CommonPrefixes><Prefix>%s</Prefix></CommonPrefixes>" % escape(common)))
            else:
                o = objects[key]
                entries.append((key, "<Contents><Key>%s</Key><LastModified>%s</LastModified><ETag>%s</ETag><Size>%d</Size></Contents>" % (
                    escape(key), iso(o.modified), escape(o.etag), len(o.data))))
        page, more = entries[:max_keys], len(entries) > max_keys
        token = "<NextContinuationToken>%s</NextContinuationToken>" % escape(page[-1][0]) if more else ""
        self.xml(
            '<ListBucketResult xmlns="http://doc.s3.amazonaws.com/2006-03-01"><Name>%s</Name><Prefix>%s</Prefix>'
            "<KeyCount>%d</KeyCount><MaxKeys>%d</MaxKeys><IsTruncated>%s</IsTruncated>%s%s</ListBucketResult>"
            % (escape(bucket), escape(prefix), len(page), max_keys, "true" if more else "false",
               "".join(x for _, x in page), token)
        )

    def do_DELETE(self):
        bucket, name, query = self.target()
        with LOCK:
            objects = self.bucket(bucket)
            if objects is None:
                return
            if "uploadId" in query:
                UPLOADS.pop(query["uploadId"], None)
                return self.reply(204)
            if name is None or name not in objects:
                return self.error(404, "NoSuchKey", "The specified key does not exist.")
            del objects[name]
            self.reply(204)

    def do_POST(self):
        bucket, name, query = self.target()
        data = self.body()
        with LOCK:
            objects = self.bucket(bucket)
            if objects is None:
                return
            if name is None:
                return self.error(400, "InvalidArgument", "POST needs an object.")
            if "uploads" in query:
                upload_id = "upload-%d" % next(UPLOAD_IDS)
                UPLOADS[upload_id] = (bucket, name, {})
                return self.xml(
                    "<InitiateMultipartUploadResult><Bucket>%s</Bucket><Key>%s</Key><UploadId>%s</UploadId></InitiateMultipartUploadResult>"
                    % (escape(bucket), escape(name), upload_id)
                )
            if "uploadId" in query:
                upload = UPLOADS.get(query["uploadId"])
                if upload is None:
                    return self.error(404, "NoSuchUpload", "The upload does not exist.")
                import xml.etree.ElementTree as ET

                numbers = [int(p.findtext("PartNumber")) for p in ET.fromstring(data).iter("Part")]
                if any(n not in upload[2] for n in numbers):
                    return self.error(400, "InvalidPart", "A part was never uploaded.")
                if not self.precondition(objects.get(name)):
                    return
                obj = Object(b"".join(upload[2][n] for n in numbers), None)
                objects[name] = obj
                del UPLOADS[query["uploadId"]]
                return self.xml(
                    "<CompleteMultipartUploadResult><Location>/%s/%s</Location><Bucket>%s</Bucket><Key>%s</Key><ETag>%s</ETag></CompleteMultipartUploadResult>"
                    % (escape(bucket), escape(name), escape(bucket), escape(name), escape(obj.etag)),
                    {"x-goog-generation": str(obj.generation)},
                )
            self.error(400, "InvalidArgument", "Unsupported POST.")


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True

    def watch_stdin():
        # The test holds our stdin; when it goes away, so do we.
        while sys.stdin.buffer.read(4096):
            pass
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    print("listening on 127.0.0.1:%d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
