// Reads pdf-as-web.properties as pdf-as-web does (java.util.Properties) and prints,
// for each URL argument, whether whitelist.url.01 (a java.util.regex) accepts it.
import java.io.FileReader;
import java.util.Properties;
import java.util.regex.Pattern;

public class Whitelist {
    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        try (FileReader r = new FileReader(args[0])) {
            p.load(r);
        }
        String re = p.getProperty("whitelist.url.01");
        for (int i = 1; i < args.length; i++) {
            System.out.println(args[i] + " " + Pattern.matches(re, args[i]));
        }
    }
}
