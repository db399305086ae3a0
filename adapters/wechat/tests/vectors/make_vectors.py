# Python 3 + hashlib + cryptography 48 (pip package `cryptography`): WeChat test vectors.
import base64, hashlib
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

def sig(*parts):
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()

def encrypt(aes_key, random16, xml, receive_id, pad_override=None):
    key = base64.b64decode(aes_key + "=")
    body = random16 + len(xml.encode()).to_bytes(4, "big") + xml.encode() + receive_id.encode()
    n = 32 - len(body) % 32
    pad = bytes([n]) * n if pad_override is None else pad_override(n)
    e = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(e.update(body + pad) + e.finalize()).decode()

TOKEN = "kefu-test-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APP_ID = "wx1234567890abcdef"
TS, NONCE = "1700000000", "1234567890"
RANDOM = b"0123456789abcdef"
MSG = ("<xml><ToUserName><![CDATA[gh_kefu]]></ToUserName><FromUserName><![CDATA[oUser123]]></FromUserName>"
       "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
       "<Content><![CDATA[请问怎么退款]]></Content><MsgId>24000000000000001</MsgId></xml>")
REPLY = ("<xml><ToUserName><![CDATA[oUser123]]></ToUserName><FromUserName><![CDATA[gh_kefu]]></FromUserName>"
         "<CreateTime>1700000001</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[您好]]></Content></xml>")
out = {}
out["SIGNATURE"] = sig(TOKEN, TS, NONCE)
out["ENCRYPTED_MSG"] = encrypt(AES_KEY, RANDOM, MSG, APP_ID)
out["MSG_SIGNATURE"] = sig(TOKEN, TS, NONCE, out["ENCRYPTED_MSG"])
out["ENCRYPTED_WRONG_APPID"] = encrypt(AES_KEY, RANDOM, MSG, "wx0000000000000000")
out["MSG_SIGNATURE_WRONG_APPID"] = sig(TOKEN, TS, NONCE, out["ENCRYPTED_WRONG_APPID"])
out["ENCRYPTED_REPLY"] = encrypt(AES_KEY, b"fedcba9876543210", REPLY, APP_ID)
out["REPLY_SIGNATURE"] = sig(TOKEN, "1700000001", "987654321", out["ENCRYPTED_REPLY"])
# Bad padding: a final pad byte of 0 and of 33, and inconsistent pad bytes.
out["ENCRYPTED_PAD_ZERO"] = encrypt(AES_KEY, RANDOM, MSG, APP_ID, lambda n: bytes(n))
out["ENCRYPTED_PAD_MIXED"] = encrypt(AES_KEY, RANDOM, MSG, APP_ID, lambda n: bytes([1]) * (n - 1) + bytes([n]))
# WeCom: receive id = CorpID.
CORP_ID = "ww1234567890abcdef"
WX_TS, WX_NONCE = "1700000100", "5555"
ECHO = encrypt(AES_KEY, RANDOM, "1616140317555161061", CORP_ID)
out["WECOM_ECHOSTR"] = ECHO
out["WECOM_ECHO_SIGNATURE"] = sig(TOKEN, WX_TS, WX_NONCE, ECHO)
WMSG = ("<xml><ToUserName><![CDATA[ww1234567890abcdef]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName>"
        "<CreateTime>1700000100</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[退款]]></Content>"
        "<MsgId>7000000000000000001</MsgId><AgentID>1000002</AgentID></xml>")
out["WECOM_ENCRYPTED_MSG"] = encrypt(AES_KEY, RANDOM, WMSG, CORP_ID)
out["WECOM_MSG_SIGNATURE"] = sig(TOKEN, WX_TS, WX_NONCE, out["WECOM_ENCRYPTED_MSG"])
for k, v in out.items():
    print(f'pub const {k}: &str = "{v}";')
