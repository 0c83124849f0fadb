"""Creates a blob container on Azurite (or any Blob endpoint), signing the
request with Shared Key as the Blob service documents it: object_store, like
alto, never creates containers. Python standard library only.

Usage: python3 azure_container.py ENDPOINT ACCOUNT KEY CONTAINER
  ENDPOINT is path-style, e.g. http://127.0.0.1:10000/devstoreaccount1
"""
import base64
import email.utils
import hashlib
import hmac
import sys
import urllib.error
import urllib.parse
import urllib.request


def main():
    endpoint, account, key, container = sys.argv[1:5]
    url = "%s/%s?restype=container" % (endpoint.rstrip("/"), container)
    headers = {
        "x-ms-date": email.utils.formatdate(usegmt=True),
        "x-ms-version": "2021-08-06",
    }
    canonical_headers = "".join("%s:%s\n" % (k, headers[k]) for k in sorted(headers))
    path = urllib.parse.urlparse(url).path
    # Verb, eleven standard headers (only Content-Type set: urllib would add
    # its own), then ours and the resource.
    content_type = "application/octet-stream"
    to_sign = "PUT\n" + "\n" * 4 + content_type + "\n" * 7 + canonical_headers + "/%s%s\nrestype:container" % (account, path)
    signature = base64.b64encode(
        hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()
    ).decode()
    headers["Content-Type"] = content_type
    headers["Authorization"] = "SharedKey %s:%s" % (account, signature)
    request = urllib.request.Request(url, method="PUT", headers=headers, data=b"")
    try:
        with urllib.request.urlopen(request) as response:
            status = response.status
    except urllib.error.HTTPError as e:
        if e.code != 409:  # already there
            sys.exit("creating the container failed: %d %s" % (e.code, e.read().decode(errors="replace")))
        status = e.code
    print(status)


if __name__ == "__main__":
    main()
